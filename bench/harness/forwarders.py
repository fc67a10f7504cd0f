"""The forwarders under test, each started from a list of port mappings.

A mapping is (proto, listen_port, target_port), always 127.0.0.1 on both
sides. start() returns once every listen port is bound (and, for
docker-proxy, once each process wrote "0\\n" on fd 3 as dockerd expects).
"""
import os
import select
import shutil
import time

import procs
from procs import spawn, stop_many, wait_ports

NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


class Forwarder:
    name = "?"
    udp = False          # can forward UDP
    idle_ok = True       # sensible to hold 10,000 idle connections
    direct = False
    fds_per_conn = 2     # descriptors held per idle proxied connection

    def __init__(self, workdir):
        self.dir = workdir
        self.procs = []

    def available(self):
        """(True, version text) or (False, reason)."""
        return True, ""

    def start(self, maps):
        raise NotImplementedError

    def roots(self):
        return [p.pid for p in self.procs]

    def alive(self):
        return all(p.poll() is None for p in self.procs)

    def stop(self):
        """Returns a complaint when a process ignored SIGTERM, else None."""
        stuck = stop_many(self.procs)
        n, self.procs = len(self.procs), []
        if stuck:
            return "%s: %d of %d processes still ran 5 s after SIGTERM " \
                   "(killed)" % (self.name, stuck, n)
        return None

    def _wait(self, maps, timeout=60):
        wait_ports(tcp=[m[1] for m in maps if m[0] == "tcp"],
                   udp=[m[1] for m in maps if m[0] == "udp"],
                   timeout=timeout, procs=self.procs)

    def _errfile(self, tag=""):
        return open(os.path.join(self.dir, "%s%s.err" % (self.name, tag)), "a")


class Direct(Forwarder):
    """No forwarder: clients talk to the backends (the ceiling)."""
    name = "direct"
    udp = True
    idle_ok = False
    direct = True

    def start(self, maps):
        pass


class Berth(Forwarder):
    name = "berth"
    udp = True

    def __init__(self, workdir, binary):
        super().__init__(workdir)
        self.binary = binary

    def available(self):
        if not self.binary or not os.access(self.binary, os.X_OK):
            return False, "berth binary not found (%s)" % self.binary
        return True, ""

    def start(self, maps):
        argv = [self.binary, "--no-docker", "--log-level", "warn"]
        for proto, lport, tport in maps:
            argv += ["-p", "127.0.0.1:%d:127.0.0.1:%d%s" % (
                lport, tport, "/udp" if proto == "udp" else "")]
        self.procs = [spawn(argv, role="fwd", stderr=self._errfile())]
        self._wait(maps)


class DockerProxy(Forwarder):
    """One process per mapping, started the way dockerd 20.10 starts it."""
    name = "docker-proxy"
    udp = True
    # Go's splice path holds a pipe (2 fds) per copying direction: 2 sockets
    # + 2 pipes per connection. Past the fd limit docker-proxy 20.10 stops
    # its listener for good (accept4: too many open files).
    fds_per_conn = 6

    def __init__(self, workdir, binary="/usr/sbin/docker-proxy", name=None):
        super().__init__(workdir)
        self.binary = binary
        if name:
            self.name = name
            self.fds_per_conn = 2

    def available(self):
        if not self.binary or not os.access(self.binary, os.X_OK):
            return False, "%s not found" % self.binary
        return True, ""

    def _spawn_one(self, proto, lport, tport, err):
        r, w = os.pipe()
        argv = [self.binary, "-proto", proto, "-host-ip", "127.0.0.1",
                "-host-port", str(lport), "-container-ip", "127.0.0.1",
                "-container-port", str(tport)]
        p = spawn(argv, role="fwd", fd3=w, stderr=err)
        os.close(w)
        return p, r

    def _ready(self, p, r, timeout=20.0):
        buf = b""
        deadline = time.time() + timeout
        try:
            while not buf.endswith(b"\n") and time.time() < deadline:
                ready, _, _ = select.select([r], [], [], 0.2)
                if ready:
                    chunk = os.read(r, 4096)
                    if not chunk:
                        break
                    buf += chunk
                elif p.poll() is not None:
                    break
        finally:
            os.close(r)
        if buf != b"0\n":
            raise RuntimeError("%s %s: fd 3 said %r (want '0\\n'), rc=%s" % (
                self.name, " ".join(p.args[1:]), buf, p.poll()))

    def start(self, maps, batch=64):
        err = self._errfile()
        for i in range(0, len(maps), batch):
            started = [self._spawn_one(*m, err=err) for m in maps[i:i + batch]]
            for p, r in started:
                self.procs.append(p)
            for p, r in started:
                self._ready(p, r)
        err.close()
        self._wait(maps)


class HAProxy(Forwarder):
    name = "haproxy"

    def available(self):
        if not shutil.which("haproxy"):
            return False, "haproxy not installed"
        return True, ""

    def start(self, maps):
        conf = os.path.join(self.dir, "haproxy.cfg")
        # 2 descriptors per connection, one per listener, some to spare
        maxconn = (procs.NOFILE - 300 - len(maps)) // 2
        lines = ["global", "  maxconn %d" % maxconn, "  nbthread 1", "",
                 "defaults", "  mode tcp", "  maxconn %d" % maxconn,
                 "  timeout connect 5s", "  timeout client 600s",
                 "  timeout server 600s", ""]
        for i, (proto, lport, tport) in enumerate(maps):
            if proto != "tcp":
                continue
            lines += ["listen m%d" % i, "  bind 127.0.0.1:%d" % lport,
                      "  server s%d 127.0.0.1:%d" % (i, tport), ""]
        with open(conf, "w") as f:
            f.write("\n".join(lines))
        self.procs = [spawn(["haproxy", "-db", "-f", conf], role="fwd",
                            stderr=self._errfile())]
        self._wait([m for m in maps if m[0] == "tcp"])


class NginxStream(Forwarder):
    name = "nginx"
    udp = True

    def __init__(self, workdir, name="nginx", half_close=False):
        super().__init__(workdir)
        self.name = name
        # nginx closes both sides at one side's FIN unless told otherwise;
        # berth and docker-proxy pass a half-close on.
        self.half_close = half_close

    def available(self):
        if not shutil.which("nginx"):
            return False, "nginx not installed"
        if not os.path.exists(NGINX_STREAM_MODULE):
            return False, "nginx stream module missing (libnginx-mod-stream)"
        return True, ""

    def start(self, maps):
        conf = os.path.join(self.dir, "%s-stream.conf" % self.name)
        err = os.path.join(self.dir, "%s-stream.err" % self.name)
        out = ["load_module %s;" % NGINX_STREAM_MODULE, "daemon off;",
               "master_process on;", "worker_processes 1;",
               "pid %s/%s-stream.pid;" % (self.dir, self.name), "error_log %s warn;" % err,
               "events { worker_connections %d; }" % (procs.NOFILE - 100),
               "stream {"]
        for proto, lport, tport in maps:
            if proto == "udp":
                out += ["  server { listen 127.0.0.1:%d udp; "
                        "proxy_pass 127.0.0.1:%d; proxy_responses 1; "
                        "proxy_timeout 10s; }" % (lport, tport)]
            else:
                out += ["  server { listen 127.0.0.1:%d backlog=4096; "
                        "proxy_pass 127.0.0.1:%d;%s }" % (
                            lport, tport,
                            " proxy_half_close on;" if self.half_close else "")]
        out.append("}")
        with open(conf, "w") as f:
            f.write("\n".join(out) + "\n")
        self.procs = [spawn(["nginx", "-e", err, "-p", self.dir, "-c", conf],
                            role="fwd")]
        self._wait(maps)


class Socat(Forwarder):
    """socat in fork mode: one listener process per mapping, a child per
    connection (TCP) or per client address (UDP)."""
    name = "socat"
    udp = True
    idle_ok = False      # 10,000 idle connections would be 10,000 processes

    def available(self):
        if not shutil.which("socat"):
            return False, "socat not installed"
        return True, ""

    def start(self, maps):
        err = self._errfile()
        for proto, lport, tport in maps:
            if proto == "udp":
                argv = ["socat", "-T", "10",
                        "UDP4-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork" % lport,
                        "UDP4:127.0.0.1:%d" % tport]
            else:
                argv = ["socat",
                        "TCP4-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,"
                        "backlog=4096" % lport, "TCP4:127.0.0.1:%d" % tport]
            self.procs.append(spawn(argv, role="fwd", stderr=err))
        err.close()
        self._wait(maps)


ALL = ["direct", "berth", "docker-proxy", "haproxy", "nginx", "socat"]
OPTIONAL = ["berth-dp",     # berth in docker-proxy mode, one process per port
            "nginx-hc"]     # nginx passing half-closes on, as berth does


def make(name, workdir, berth_bin):
    if name == "direct":
        return Direct(workdir)
    if name == "berth":
        return Berth(workdir, berth_bin)
    if name == "docker-proxy":
        return DockerProxy(workdir)
    if name == "berth-dp":
        return DockerProxy(workdir, berth_bin, name="berth-dp")
    if name == "haproxy":
        return HAProxy(workdir)
    if name == "nginx":
        return NginxStream(workdir)
    if name == "nginx-hc":
        return NginxStream(workdir, name="nginx-hc", half_close=True)
    if name == "socat":
        return Socat(workdir)
    raise ValueError("unknown forwarder %r (known: %s)" % (
        name, ", ".join(ALL + OPTIONAL)))
