#!/usr/bin/python3
"""--admin and /metrics with real clients: berth on loopback in front of an
echo backend, exactly 37 TCP connections carrying known byte counts each
way, 23 UDP datagrams, one connection to a target that refuses, DNS
queries through dig (answered locally, and forwarded to a dnsmasq this test
starts), then the real curl binary reads /metrics and every number is
checked exactly; `promtool check metrics` lints the page when promtool is
installed (Debian package prometheus). Also: 404, 405, HEAD (no body, and
the keep-alive connection goes on with a GET), UDP datagrams received =
relayed + dropped against a target that refuses, the content type, the
config file key, and an address in use ending berth at start.

Traffic goes to loopback only; DNS never leaves for the machine's resolver."""

import json
import os
import re
import shutil
import signal
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


def read_head(f):
    """(status code, {lowercased header: value}) of one response's head
    read from file f, leaving f at its first body byte."""
    status = f.readline().decode()
    m = re.match(r"HTTP/1\.1 (\d{3}) ", status)
    if not m:
        raise AssertionError("not a status line: %r" % status)
    hdr = {}
    for line in iter(f.readline, b"\r\n"):
        if not line:
            raise AssertionError("connection closed inside a response head")
        k, _, v = line.decode().partition(":")
        hdr[k.strip().lower()] = v.strip()
    return int(m.group(1)), hdr


def read_exact(f, n):
    data = b""
    while len(data) < n:
        chunk = f.read(n - len(data))
        if not chunk:
            raise AssertionError("closed after %d of %d body bytes" % (len(data), n))
        data += chunk
    return data


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
        base = u.free_ports(6, ("127.0.0.1",))
        tp, up, rp, ap, dp, xp = range(base, base + 6)
        cls.dead = u.free_port()  # nothing listens: connects are refused
        while base <= cls.dead < base + 6 or u.port_in_use("udp", cls.dead):
            cls.dead = u.free_port()
        cls.tp, cls.up, cls.rp, cls.ap, cls.dp, cls.xp = tp, up, rp, ap, dp, xp
        args = ["-p", "127.0.0.1:%d:127.0.0.1:%d" % (tp, cls.echo.port),
                "-p", "127.0.0.1:%d:127.0.0.1:%d/udp" % (up, cls.uecho.port),
                "-p", "127.0.0.1:%d:127.0.0.1:%d" % (rp, cls.dead),
                "-p", "127.0.0.1:%d:127.0.0.1:%d/udp" % (xp, cls.dead),
                "--admin", "127.0.0.1:%d" % ap]
        binds = [("tcp", tp), ("udp", up), ("tcp", rp), ("udp", xp), ("tcp", ap)]
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
            'berth_udp_dropped_total{%s,reason="flow"}' % ul: 0,
            'berth_udp_dropped_total{%s,reason="send"}' % ul: 0,
            'berth_udp_dropped_total{%s,reason="draining"}' % ul: 0,
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

    def test_udp_received_is_relayed_plus_dropped(self):
        """A UDP target that refuses (ICMP port unreachable): the kernel
        refuses some sends towards it. Each datagram received is relayed
        (its bytes counted) or dropped under one reason, never both."""
        n, size = 40, 50
        # Sent while berth is stopped, they are read in one batch and leave
        # in one sendmmsg: the refusal the first one causes (ICMP, at once on
        # loopback) meets the next, which the kernel refuses. Sent one by
        # one, berth would read each refusal on the flow's socket first.
        os.kill(self.berth.pid, signal.SIGSTOP)
        try:
            with u.udp_socket() as s:
                for _ in range(n):
                    s.sendto(b"x" * size, ("127.0.0.1", self.xp))
        finally:
            os.kill(self.berth.pid, signal.SIGCONT)
        xl = labels("127.0.0.1:%d" % self.xp, "udp", "127.0.0.1:%d" % self.dead)
        key = 'berth_udp_datagrams_total{%s,direction="in"}' % xl

        def all_in():
            return parse(self.scrape()[1]).get(key) == n
        self.assertTrue(u.poll_until(all_in, 10), self.scrape()[1])
        m = parse(self.scrape()[1])
        dropped = {r: m['berth_udp_dropped_total{%s,reason="%s"}' % (xl, r)]
                   for r in ("no_target", "flow", "send", "draining")}
        relayed_bytes = m['berth_bytes_total{%s,direction="in"}' % xl]
        self.assertEqual(relayed_bytes % size, 0)
        self.assertEqual(relayed_bytes / size + sum(dropped.values()), n,
                         "%s bytes in, dropped %s" % (relayed_bytes, dropped))
        self.assertEqual(dropped["no_target"] + dropped["flow"] + dropped["draining"], 0)
        self.assertGreater(dropped["send"], 0)
        self.assertEqual(m['berth_udp_datagrams_total{%s,direction="out"}' % xl], 0)
        print("\nrefusing UDP target: %d of %d datagrams dropped (send)"
              % (dropped["send"], n), file=sys.stderr)

    def test_head_then_get_on_one_connection(self):
        """HEAD carries GET's Content-Length and no body: the next response
        on the same keep-alive connection is read from its first byte."""
        with socket.create_connection(("127.0.0.1", self.ap), timeout=10) as c:
            # Unbuffered: a body sent after a HEAD stays in the socket, where
            # the peek below sees it.
            f = c.makefile("rb", buffering=0)
            lengths = {}
            for path in ("/metrics", "/status", "/"):
                c.sendall(b"HEAD %s HTTP/1.1\r\nHost: berth\r\n\r\n" % path.encode())
                code, hdr = read_head(f)
                self.assertEqual(code, 200, hdr)
                self.assertIn("content-length", hdr, path)
                lengths[path] = int(hdr["content-length"])
                self.assertGreater(lengths[path], 100, path)
                # Nothing follows the headers.
                c.settimeout(0.3)
                with self.assertRaises(socket.timeout, msg=path):
                    extra = c.recv(1, socket.MSG_PEEK)
                    self.fail("%r followed HEAD %s" % (extra, path))
                c.settimeout(10)
            c.sendall(b"HEAD /nope HTTP/1.1\r\nHost: berth\r\n\r\n")
            self.assertEqual(read_head(f)[0], 404)
            c.sendall(b"GET /metrics HTTP/1.1\r\nHost: berth\r\n\r\n")
            code, hdr = read_head(f)
            self.assertEqual(code, 200, hdr)
            self.assertEqual(hdr["content-type"], CTYPE)
            body = read_exact(f, int(hdr["content-length"])).decode()
            self.assertTrue(body.startswith("# HELP berth_connections_total "), body[:80])
            self.assertTrue(body.endswith("\n"))
            # The process figures may change between the two: same families.
            self.assertIn('berth_build_info{version="%s"} 1\n' % self.version(), body)
            self.assertLess(abs(len(body) - lengths["/metrics"]), 64)
            c.sendall(b"GET /status HTTP/1.1\r\nHost: berth\r\n\r\n")
            code, hdr = read_head(f)
            self.assertEqual(code, 200, hdr)
            self.assertEqual(hdr["content-type"], "application/json")
            doc = json.loads(read_exact(f, int(hdr["content-length"])))
            self.assertIn("version", doc)
            f.close()

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


class Draining(unittest.TestCase):
    def test_udp_port_removed_by_reload(self):
        """A UDP port a reload removed keeps its flow; a new client's
        datagrams are counted as dropped for reason="draining", and received
        = relayed + dropped still holds."""
        uecho = u.UdpEcho()
        self.addCleanup(uecho.close)
        d = tempfile.TemporaryDirectory(prefix="berth-metrics-",
                                        dir=os.environ.get("BERTH_TEST_ROOT", "/tmp"))
        self.addCleanup(d.cleanup)
        path = os.path.join(d.name, "berth.json")
        base = u.free_ports(3, ("127.0.0.1",))
        up, tp, ap = base, base + 1, base + 2

        def write(publish):
            with open(path + ".new", "w") as f:
                json.dump({"publish": publish, "admin": "127.0.0.1:%d" % ap}, f)
            os.replace(path + ".new", path)
        write(["127.0.0.1:%d:127.0.0.1:%d/udp" % (up, uecho.port)])
        url = "http://127.0.0.1:%d/metrics" % ap
        with u.Berth(["--config", path]) as b, \
                u.udp_socket() as kept, u.udp_socket() as late:
            b.wait_bound([("udp", up), ("tcp", ap)])
            kept.sendto(b"k" * 10, ("127.0.0.1", up))
            self.assertEqual(kept.recvfrom(100)[0], b"k" * 10)
            write(["127.0.0.1:%d:127.0.0.1:9" % tp])
            b.send_signal(signal.SIGHUP)
            self.assertTrue(u.poll_until(lambda: 'result="ok"} 1\n' in curl(url)[2], 10),
                            b.log_tail())
            for _ in range(3):
                late.sendto(b"n" * 7, ("127.0.0.1", up))
            for i in range(2):
                kept.sendto(b"k" * (20 + i), ("127.0.0.1", up))
                self.assertEqual(kept.recvfrom(100)[0], b"k" * (20 + i))
            ul = labels("127.0.0.1:%d" % up, "udp", "127.0.0.1:%d" % uecho.port)
            # berth.c marks a retired port (metrics_port_draining): its
            # series then carry state="draining", and no unmarked one is left.
            page = curl(url)[2]
            ours = [ln for ln in page.splitlines() if "{%s" % ul in ln]
            self.assertTrue(ours, page)
            unmarked = [ln for ln in ours if 'state="draining"' not in ln]
            self.assertEqual(unmarked, [], "a retired port's series left unmarked")
            ul += ',state="draining"'

            def counted():
                m = parse(curl(url)[2])
                return m.get('berth_udp_datagrams_total{%s,direction="in"}' % ul) == 6
            self.assertTrue(u.poll_until(counted, 10), curl(url)[2])
            m = parse(curl(url)[2])
            self.assertEqual(m['berth_udp_dropped_total{%s,reason="draining"}' % ul], 3)
            self.assertEqual(m['berth_bytes_total{%s,direction="in"}' % ul], 10 + 20 + 21)
            self.assertEqual(m['berth_udp_datagrams_total{%s,direction="out"}' % ul], 3)
            self.assertEqual(m["berth_udp_flows_active{%s}" % ul], 1)
            for r in ("no_target", "flow", "send"):
                self.assertEqual(m['berth_udp_dropped_total{%s,reason="%s"}' % (ul, r)], 0)
            self.assertEqual(b.stop(), 0, b.log_tail())


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
