"""The shared backends every forwarder is measured against (loopback only).

- nginx: HTTP, one worker, serves /small.html (a 128-byte file)
- iperf3 -s: bulk throughput
- dnsmasq: answers bench.test (and subdomains) with 192.0.2.10 from its own
  configuration, --no-resolv: it never forwards anywhere.
"""
import os

from procs import spawn, stop, wait_ports, log

NGINX_MODULES = "/usr/lib/nginx/modules"
DNS_NAME = "bench.test"
DNS_ANSWER = "192.0.2.10"

HTTP_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx-backend.pid;
error_log {dir}/nginx-backend.err warn;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path {dir}/nb-body;
  proxy_temp_path {dir}/nb-proxy;
  fastcgi_temp_path {dir}/nb-fastcgi;
  uwsgi_temp_path {dir}/nb-uwsgi;
  scgi_temp_path {dir}/nb-scgi;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    root {dir}/www;
    location / {{ }}
  }}
}}
"""


class Backends:
    def __init__(self, workdir, base_port):
        self.dir = workdir
        self.http_port = base_port
        self.iperf_port = base_port + 1
        self.dns_port = base_port + 2
        self.procs = {}
        self.query_file = os.path.join(workdir, "queries.txt")

    def ports(self):
        return {"http": self.http_port, "iperf": self.iperf_port,
                "dns": self.dns_port}

    def start(self):
        os.makedirs(os.path.join(self.dir, "www"), exist_ok=True)
        with open(os.path.join(self.dir, "www", "small.html"), "w") as f:
            f.write(("berth bench " * 11)[:127] + "\n")
        with open(self.query_file, "w") as f:
            for i in range(16):
                f.write("%s%s A\n" % ("" if i == 0 else "h%d." % i, DNS_NAME))
        self.start_nginx()
        self.start_iperf()
        self.start_dnsmasq()

    def start_nginx(self):
        conf = os.path.join(self.dir, "nginx-backend.conf")
        with open(conf, "w") as f:
            f.write(HTTP_CONF.format(dir=self.dir, port=self.http_port))
        p = spawn(["nginx", "-e", os.path.join(self.dir, "nginx-backend.err"),
                   "-p", self.dir, "-c", conf], role="load")
        self.procs["nginx"] = p
        wait_ports(tcp=[self.http_port], procs=[p])

    def start_iperf(self):
        p = spawn(["iperf3", "-s", "-B", "127.0.0.1", "-p",
                   str(self.iperf_port)], role="load")
        self.procs["iperf3"] = p
        wait_ports(tcp=[self.iperf_port], procs=[p])

    def restart_iperf(self):
        """iperf3 -s can stay 'busy' after a failed test: start it afresh."""
        log("restarting iperf3 server")
        stop(self.procs.pop("iperf3", None))
        self.start_iperf()

    def start_dnsmasq(self):
        p = spawn(["dnsmasq", "-k", "-C", "/dev/null", "-u", "root",
                   "-p", str(self.dns_port), "--listen-address=127.0.0.1",
                   "--bind-interfaces", "--no-resolv", "--no-hosts",
                   "--no-poll", "--pid-file=",
                   "--address=/%s/%s" % (DNS_NAME, DNS_ANSWER)], role="load",
                  stderr=open(os.path.join(self.dir, "dnsmasq.err"), "w"))
        self.procs["dnsmasq"] = p
        wait_ports(udp=[self.dns_port], procs=[p])

    def stop(self):
        for p in self.procs.values():
            stop(p)
        self.procs = {}
