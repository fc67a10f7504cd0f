#!/usr/bin/python3
"""--admin and /metrics with real clients: berth on loopback in front of an
echo backend, exactly 37 TCP connections carrying known byte counts each
way, 23 UDP datagrams, one connection to a target that refuses, DNS
queries through dig (answered locally, and forwarded to a dnsmasq this test
starts), then the real curl binary reads /metrics and every number is
checked exactly; `promtool check metrics` lints the page when promtool is
installed (Debian package prometheus). Also: 404, 405, HEAD, the content
type, the config file key, and an address in use ending berth at start.

Traffic goes to loopback only; DNS never leaves for the machine's resolver."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402

CURL = shutil.which("curl")
DIG = shutil.which("dig")
PROMTOOL = shutil.which("promtool")
DNSMASQ = shutil.which("dnsmasq") or (
    "/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None)

N_TCP = 37
M_UDP = 23
GREET = b"hello from the backend\n"  # 23 bytes, sent once per connection
CTYPE = "text/plain; version=0.0.4; charset=utf-8"


def setUpModule():
    u.require_berth()
    if not CURL:
        raise unittest.SkipTest("curl not installed")


def curl(url, *args):
    """(status, headers text, body) of one request by the curl binary."""
    with tempfile.TemporaryDirectory(prefix="berth-curl-",
                                     dir=os.environ.get("BERTH_TEST_ROOT", "/tmp")) as d:
        hdr = os.path.join(d, "h")
        p = subprocess.run([CURL, "-sS", "--max-time", "10", "-D", hdr, "-o", "-",
                            "-w", "\n%{http_code}", *args, url],
                           capture_output=True, timeout=20)
        body, _, code = p.stdout.decode().rpartition("\n")
        with open(hdr) as f:
            return int(code), f.read(), body


def parse(text):
    """{'name{labels}': value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out


def labels(listen, proto, target):
    return 'listen="%s",proto="%s",target="%s"' % (listen, proto, target)


class Dnsmasq(u.Proc):
    """A loopback upstream answering example.test, nothing else."""

    def __init__(self):
        self.port = u.free_port()
        args = [DNSMASQ, "-k", "-p", str(self.port), "--listen-address=127.0.0.1",
                "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--pid-file=", "--address=/example.test/192.0.2.10"]
        if os.geteuid() == 0:
            args.append("--user=nobody")
        super().__init__(args)
        if not u.poll_until(lambda: not self.alive() or u.port_in_use("udp", self.port),
                            u.READY_TIMEOUT, 0.05) or not self.alive():
            self.close()
            raise AssertionError("dnsmasq did not start: " + self.stderr())


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.echo = u.EchoServer(greet=GREET)
        cls.uecho = u.UdpEcho()
        cls.dnsmasq = Dnsmasq() if DNSMASQ and DIG else None
        base = u.free_ports(5, ("127.0.0.1",))
        tp, up, rp, ap, dp = range(base, base + 5)
        cls.dead = u.free_port()  # nothing listens: connects are refused
        while base <= cls.dead < base + 5:
            cls.dead = u.free_port()
        cls.tp, cls.up, cls.rp, cls.ap, cls.dp = tp, up, rp, ap, dp
        args = ["-p", "127.0.0.1:%d:127.0.0.1:%d" % (tp, cls.echo.port),
                "-p", "127.0.0.1:%d:127.0.0.1:%d/udp" % (up, cls.uecho.port),
                "-p", "127.0.0.1:%d:127.0.0.1:%d" % (rp, cls.dead),
                "--admin", "127.0.0.1:%d" % ap]
        binds = [("tcp", tp), ("udp", up), ("tcp", rp), ("tcp", ap)]
        if cls.dnsmasq:
            args += ["--dns", "127.0.0.1:%d" % dp,
                     "--upstream", "127.0.0.1:%d" % cls.dnsmasq.port]
            binds.append(("udp", dp))
        cls.berth = u.Berth(args)
        cls.berth.wait_bound(binds)
        cls.url = "http://127.0.0.1:%d/metrics" % ap

    @classmethod
    def tearDownClass(cls):
        rc = cls.berth.stop()
        err = cls.berth.stderr()
        cls.berth.close()
        cls.echo.close()
        cls.uecho.close()
        if cls.dnsmasq:
            cls.dnsmasq.close()
        if rc != 0 or "Sanitizer" in err:
            raise AssertionError(f"berth stopped with {rc}; stderr:\n{err}")

    def scrape(self):
        code, headers, body = curl(self.url)
        self.assertEqual(code, 200, body)
        return headers, body

    def test_exact_counts(self):
        sent = 0
        for i in range(N_TCP):
            data = bytes([65 + i % 26]) * (100 * i + 1)
            with socket.create_connection(("127.0.0.1", self.tp), timeout=10) as c:
                c.sendall(data)
                want = len(GREET) + len(data)
                got = b""
                while len(got) < want:
                    chunk = c.recv(65536)
                    self.assertTrue(chunk, "the echo ended early")
                    got += chunk
                self.assertEqual(got, GREET + data)
            sent += len(data)
        # UDP: one client, each datagram echoed.
        usent = 0
        with u.udp_socket() as s:
            for i in range(M_UDP):
                d = b"u" * (10 + i)
                s.sendto(d, ("127.0.0.1", self.up))
                r, _ = s.recvfrom(65536)
                self.assertEqual(r, d)
                usent += len(d)
        # A target that refuses: the client is reset (berth may have done so
        # before connect() returns here).
        try:
            with socket.create_connection(("127.0.0.1", self.rp), timeout=10) as c:
                self.assertEqual(c.recv(1), b"")
        except ConnectionResetError:
            pass
        tl = labels("127.0.0.1:%d" % self.tp, "tcp", "127.0.0.1:%d" % self.echo.port)
        rl = labels("127.0.0.1:%d" % self.rp, "tcp", "127.0.0.1:%d" % self.dead)
        ul = labels("127.0.0.1:%d" % self.up, "udp", "127.0.0.1:%d" % self.uecho.port)
        # Sessions end a moment after the clients close.
        def settled():
            m = parse(self.scrape()[1])
            return (m.get("berth_connections_active{%s}" % tl) == 0 and
                    m.get("berth_connections_active{%s}" % rl) == 0 and
                    m.get('berth_connect_errors_total{%s,reason="refused"}' % rl) == 1)
        self.assertTrue(u.poll_until(settled, 10), self.scrape()[1])
        headers, body = self.scrape()
        self.assertRegex(headers, r"(?im)^content-type: " + re.escape(CTYPE) + r"\r?$")
        m = parse(body)
        want = {
            "berth_connections_total{%s}" % tl: N_TCP,
            'berth_bytes_total{%s,direction="in"}' % tl: sent,
            'berth_bytes_total{%s,direction="out"}' % tl: sent + N_TCP * len(GREET),
            "berth_connect_duration_seconds_count{%s}" % tl: N_TCP,
            'berth_connect_duration_seconds_bucket{%s,le="+Inf"}' % tl: N_TCP,
            'berth_connect_errors_total{%s,reason="refused"}' % tl: 0,
            "berth_connections_total{%s}" % rl: 1,
            'berth_connect_errors_total{%s,reason="refused"}' % rl: 1,
            'berth_connect_errors_total{%s,reason="timeout"}' % rl: 0,
            "berth_connect_duration_seconds_count{%s}" % rl: 0,
            'berth_bytes_total{%s,direction="in"}' % rl: 0,
            'berth_udp_datagrams_total{%s,direction="in"}' % ul: M_UDP,
            'berth_udp_datagrams_total{%s,direction="out"}' % ul: M_UDP,
            'berth_bytes_total{%s,direction="in"}' % ul: usent,
            'berth_bytes_total{%s,direction="out"}' % ul: usent,
            "berth_udp_flows_active{%s}" % ul: 1,
            'berth_udp_dropped_total{%s,reason="no_target"}' % ul: 0,
            'berth_build_info{version="%s"}' % self.version(): 1,
        }
        for k, v in want.items():
            self.assertEqual(m.get(k), v, k)
        # Cumulative buckets, ending at the count.
        buckets = [v for k, v in m.items()
                   if k.startswith("berth_connect_duration_seconds_bucket{%s," % tl)]
        self.assertEqual(len(buckets), 14)
        self.assertEqual(buckets, sorted(buckets))
        self.assertGreater(m["process_open_fds"], 5)
        self.assertGreater(m["process_resident_memory_bytes"], 100000)
        self.assertNotIn("berth_docker_up", m)  # --no-docker: no engine followed
        self.promtool(body)

    def version(self):
        return subprocess.run([u.BERTH, "--version"], capture_output=True,
                              text=True).stdout.split()[1]

    def promtool(self, body):
        if not PROMTOOL:
            print("\npromtool not installed (Debian package prometheus): "
                  "the page was not linted", file=sys.stderr)
            return
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=body.encode(),
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())

    def test_dns_queries(self):
        if not self.dnsmasq:
            self.skipTest("dnsmasq or dig missing")

        def dig(name):
            out = subprocess.run([DIG, "@127.0.0.1", "-p", str(self.dp), "+tries=1",
                                  "+time=5", name], capture_output=True, text=True,
                                 timeout=20).stdout
            return re.search(r"status: (\w+)", out).group(1)

        before = parse(self.scrape()[1])
        fwd = [dig("example.test") for _ in range(3)]
        local = [dig("nothing.docker") for _ in range(2)]
        self.assertEqual(fwd, ["NOERROR"] * 3)
        m = parse(self.scrape()[1])

        def delta(rcode, answer):
            k = 'berth_dns_queries_total{rcode="%s",answer="%s"}' % (rcode, answer)
            return m.get(k, 0) - before.get(k, 0)
        self.assertEqual(delta("NOERROR", "forwarded"), 3)
        self.assertEqual(delta(local[0], "local"), 2)
        self.assertEqual(len(set(local)), 1)
        c = "berth_dns_forward_duration_seconds_count"
        self.assertEqual(m[c] - before.get(c, 0), 3)
        self.assertEqual(m['berth_dns_forward_duration_seconds_bucket{le="+Inf"}'], m[c])

    def test_http_limits(self):
        base = "http://127.0.0.1:%d" % self.ap
        self.assertEqual(curl(base + "/nope")[0], 404)
        code, headers, _ = curl(base + "/metrics", "-X", "POST", "-d", "x")
        self.assertEqual(code, 405)
        self.assertIn("allow: get, head", headers.lower())
        code, headers, body = curl(base + "/metrics", "-I")
        self.assertEqual(code, 200)
        # curl -I writes the headers where the body would go: nothing else came.
        self.assertEqual(body.replace("\r", "").rstrip(), headers.replace("\r", "").rstrip())
        self.assertIn(CTYPE, headers)
        # Headers past 8 KiB are refused, and berth goes on serving.
        code = curl(base + "/metrics", "-H", "X-Big: " + "a" * 9000)[0]
        self.assertIn(code, (400, 413, 431))
        self.assertEqual(self.scrape()[1].count("# TYPE berth_build_info gauge"), 1)


class Startup(unittest.TestCase):
    def test_address_in_use_ends_berth(self):
        held = u.tcp_listener("127.0.0.1", 0)
        port = held.getsockname()[1]
        try:
            rc, _, err, _ = u.run_berth(["-p", "127.0.0.1:%d:127.0.0.1:9" % u.free_port(),
                                         "--admin", "127.0.0.1:%d" % port])
        finally:
            held.close()
        self.assertEqual(rc, 1, err)
        self.assertIn("admin: listen tcp 127.0.0.1:%d: Address already in use" % port, err)

    def test_bad_address_is_usage(self):
        rc, _, err, _ = u.run_berth(["-p", "127.0.0.1:9:127.0.0.1:9", "--admin", "nowhere"])
        self.assertEqual(rc, 2)
        self.assertIn("--admin 'nowhere'", err)

    def test_config_key_and_ipv6(self):
        if not u.have_ipv6():
            self.skipTest("no IPv6 loopback")
        port, pp = u.free_port(("::1",)), u.free_port()
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False,
                                         dir=os.environ.get("BERTH_TEST_ROOT", "/tmp")) as f:
            json.dump({"publish": ["127.0.0.1:%d:127.0.0.1:9" % pp],
                       "admin": "[::1]:%d" % port}, f)
        try:
            with u.Berth(["--config", f.name]) as b:
                b.wait_bound([("tcp", port)])
                code, _, body = curl("http://[::1]:%d/metrics" % port)
                self.assertEqual(code, 200)
                self.assertIn('berth_connections_total{listen="127.0.0.1:%d",proto="tcp",'
                              'target="127.0.0.1:9"} 0\n' % pp, body)
                self.assertEqual(b.stop(), 0)
        finally:
            os.unlink(f.name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
