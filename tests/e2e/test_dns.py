#!/usr/bin/python3
"""berth's DNS server with real clients, no Docker engine (--no-docker: the
zone is empty, so names in it are NXDOMAIN with the zone's SOA):
forwarding to a local dnsmasq (dig over UDP and TCP, +norec, +bufsize,
0x20 mixed case echoed), TC from the upstream retried over TCP, byte-exact
replies read with Python sockets, EDNS0 and BADVERS, pipelined TCP, the
idle TCP timeout, 50,000 random and truncated packets followed by a correct
answer, a dead upstream giving SERVFAIL within the timeout, a query flood
to a black-hole upstream with bounded fds and memory, dnsperf, IPv6, and a
client in a network namespace of the test's own refused forwarding but
answered for the zone.

Every upstream is a dnsmasq (or socket) this test starts on loopback;
nothing is ever sent to the machine's own resolver."""

import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402
from dnsmsg import header, query, tcp_frame, tcp_read, udp_ask  # noqa: E402

DIG = shutil.which("dig")
DNSMASQ = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None)
DNSPERF = shutil.which("dnsperf")
IP = shutil.which("ip")

# Five 200-byte TXT records: an answer that never fits 512 bytes.
BIG_TXT = ["big%d-" % i + "x" * 194 for i in range(5)]


def setUpModule():
    u.require_berth()
    u.raise_fd_limit()
    if not DNSMASQ:
        raise unittest.SkipTest("dnsmasq not installed (apt-get install dnsmasq-base)")


# --------------------------------------------------------------------------
# processes

class Dnsmasq(u.Proc):
    """The upstream: answers example.test itself, big.example.test with
    five long TXT records, nothing else (no resolv.conf, no hosts)."""

    def __init__(self):
        self.port = u.free_port()
        args = [DNSMASQ, "-k", "-p", str(self.port), "--listen-address=127.0.0.1",
                "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--user=" + ("nobody" if os.geteuid() == 0 else os.environ.get("USER", "")),
                "--pid-file=", "--address=/example.test/192.0.2.10"]
        args += ["--txt-record=big.example.test,%s" % t for t in BIG_TXT]
        if os.geteuid() != 0:
            args = [a for a in args if not a.startswith("--user=")]
        super().__init__(args)
        ok = u.poll_until(lambda: not self.alive() or self._answers(), u.READY_TIMEOUT, 0.05)
        if not ok or not self.alive():
            self.close()
            raise AssertionError("dnsmasq did not start: " + self.stderr())

    def _answers(self):
        try:
            return header(udp_ask(self.port, query("example.test"), timeout=0.5))["an"] == 1
        except OSError:
            return False


class DnsBerth(u.Berth):
    """berth --no-docker --dns 127.0.0.1:P [--dns [::1]:P] --upstream ..."""

    def __init__(self, upstreams, extra=(), v6=False, host="127.0.0.1", env=None):
        hosts = ("0.0.0.0",)
        self.port = u.free_port(hosts)
        self.host = host
        args = ["--dns", "%s:%d" % (host, self.port)]
        if v6:
            args += ["--dns", "[::1]:%d" % self.port]
        for up in upstreams:
            args += ["--upstream", up]
        super().__init__(args + list(extra), env=env)
        try:
            self.wait_bound([("udp", self.port), ("tcp", self.port)])
        except BaseException:
            self.close()
            raise

    def ask(self, msg, host=None, timeout=10.0):
        return udp_ask(self.port, msg, host or self.host, timeout)

    def finish(self):
        """A clean stop: SIGTERM gives exit 0 and no sanitizer report (so an
        ASan build's leak check covers every test's berth)."""
        rc = self.stop()
        err = self.stderr()
        self.close()
        if rc != 0 or "Sanitizer" in err:
            raise AssertionError(f"berth stopped with {rc}; stderr:\n{err}")

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.finish()
        else:
            self.close()


def dig(port, *args, server="127.0.0.1", timeout=30):
    """dig's output. +time/+tries keep it bounded; no search list, no
    resolv.conf server (always @server)."""
    argv = [DIG, "@" + server, "-p", str(port), "+time=5", "+tries=1"] + list(args)
    p = subprocess.run(argv, capture_output=True, timeout=timeout, text=True)
    return p.stdout + p.stderr


def status(out):
    m = re.search(r"status: (\w+)", out)
    return m.group(1) if m else None


def flags(out):
    m = re.search(r";; flags: ([a-z ]*);", out)
    return set(m.group(1).split()) if m else set()


def section(out, name):
    """Records of one dig section, as lists of fields."""
    m = re.search(r";; %s SECTION:\n(.*?)(?:\n\n|\Z)" % name, out, re.S)
    if not m:
        return []
    return [l.split() for l in m.group(1).splitlines() if l and not l.startswith(";")]


@unittest.skipUnless(DIG, "dig not installed (apt-get install dnsutils)")
class Dig(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dm = Dnsmasq()
        try:
            cls.b = DnsBerth(["127.0.0.1:%d" % cls.dm.port])
        except BaseException:
            cls.dm.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.b.finish()
        finally:
            cls.dm.close()

    def test_forwarded_udp_and_tcp(self):
        for mode in ("+notcp", "+tcp"):
            out = dig(self.b.port, mode, "example.test", "A")
            self.assertEqual(status(out), "NOERROR", out)
            self.assertIn("ra", flags(out))
            self.assertEqual([r[4] for r in section(out, "ANSWER")], ["192.0.2.10"], out)

    def test_mixed_case_echoed(self):
        out = dig(self.b.port, "+noall", "+question", "+answer", "ExAmPlE.tEsT")
        self.assertIn("ExAmPlE.tEsT.", out)
        out = dig(self.b.port, "nOpE.DoCkEr")
        self.assertEqual(status(out), "NXDOMAIN")
        self.assertIn(";nOpE.DoCkEr.", out)

    def test_norec(self):
        out = dig(self.b.port, "+norec", "nope.docker")
        self.assertEqual(status(out), "NXDOMAIN")
        self.assertEqual(flags(out), {"qr", "aa", "ra"})
        out = dig(self.b.port, "+norec", "example.test")
        self.assertEqual(status(out), "NOERROR")
        self.assertNotIn("rd", flags(out))

    def test_zone_nxdomain_and_empty_with_soa(self):
        for name, qtype, want in (("nope.docker", "A", "NXDOMAIN"),
                                  ("a.b.nope.docker", "AAAA", "NXDOMAIN"),
                                  ("docker", "A", "NOERROR")):
            out = dig(self.b.port, name, qtype)
            self.assertEqual(status(out), want, out)
            self.assertIn("aa", flags(out))
            self.assertEqual(section(out, "ANSWER"), [])
            auth = section(out, "AUTHORITY")
            self.assertEqual(len(auth), 1, out)
            self.assertEqual(auth[0][:5], ["docker.", "5", "IN", "SOA", "ns.docker."])
            self.assertEqual(auth[0][-1], "5")          # negative TTL = --ttl
        out = dig(self.b.port, "docker", "SOA")
        self.assertEqual(section(out, "ANSWER")[0][3], "SOA")

    def test_edns(self):
        out = dig(self.b.port, "+bufsize=1232", "nope.docker")
        self.assertIn("EDNS: version: 0", out)
        self.assertRegex(out, r"udp: \d+")
        out = dig(self.b.port, "+noedns", "nope.docker")
        self.assertNotIn("EDNS:", out)
        out = dig(self.b.port, "+edns=1", "+noednsneg", "nope.docker")
        self.assertEqual(status(out), "BADVERS", out)

    def test_truncated_upstream_answer(self):
        # Without EDNS: the upstream truncates, berth asks it over TCP, the
        # answer is still too big for the client, which retries over TCP.
        out = dig(self.b.port, "+noedns", "big.example.test", "TXT")
        self.assertIn("Truncated, retrying in TCP mode", out)
        self.assertEqual(status(out), "NOERROR")
        self.assertEqual(sorted(r[4].strip('"') for r in section(out, "ANSWER")), BIG_TXT)
        out = dig(self.b.port, "+noedns", "+ignore", "big.example.test", "TXT")
        self.assertIn("tc", flags(out))
        self.assertEqual(section(out, "ANSWER"), [])
        # With room for it: one UDP answer, whole.
        out = dig(self.b.port, "+bufsize=4096", "big.example.test", "TXT")
        self.assertNotIn("Truncated", out)
        self.assertEqual(len(section(out, "ANSWER")), 5, out)


class Bytes(unittest.TestCase):
    """Exact bytes, from Python sockets."""

    @classmethod
    def setUpClass(cls):
        cls.dm = Dnsmasq()
        try:
            cls.b = DnsBerth(["127.0.0.1:%d" % cls.dm.port],
                             extra=["--ttl", "30", "--domain", "Lab.Internal"])
        except BaseException:
            cls.dm.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.b.finish()
        finally:
            cls.dm.close()

    def test_nxdomain_exact(self):
        q = query("nope.LAB.internal", qid=0xBEEF)
        r = self.b.ask(q)
        serial = r[-20:-16]
        zone = 12 + 5                        # "nope" is 5 bytes: the zone follows
        want = struct.pack(">HHHHHH", 0xBEEF, 0x8583, 1, 0, 1, 0) + q[12:]
        want += struct.pack(">HHHIH", 0xC000 | zone, 6, 1, 30, 38)
        want += b"\2ns" + struct.pack(">H", 0xC000 | zone)
        want += b"\x0ahostmaster" + struct.pack(">H", 0xC000 | zone)
        want += serial + struct.pack(">IIII", 3600, 600, 86400, 30)
        self.assertEqual(r, want)

    def test_edns_reply_exact(self):
        q = query("Lab.Internal", qtype=6, qid=7, edns=4096, do=True)
        r = self.b.ask(q)
        h = header(r)
        self.assertEqual((h["flags"], h["an"], h["ns"], h["ar"]), (0x8580, 1, 0, 1))
        self.assertEqual(r[12:12 + len(q) - 12 - 11], q[12:-11])
        # OPT last: root, type 41, our size, no extended rcode, DO echoed.
        self.assertEqual(r[-11:], b"\0" + struct.pack(">HHBBHH", 41, 1232, 0, 0, 0x8000, 0))

    def test_forwarded_keeps_id_and_case(self):
        q = query("ExAmple.TEST", qid=0x0A0B)
        r = self.b.ask(q)
        h = header(r)
        self.assertEqual(h["id"], 0x0A0B)
        self.assertEqual(h["an"], 1)
        self.assertEqual(r[12:12 + len(q) - 12], q[12:])
        self.assertEqual(r[-4:], bytes([192, 0, 2, 10]))

    def test_formerr_and_silence(self):
        q = bytearray(query("nope.lab.internal", qid=99))
        q[5] = 2                                     # two questions
        r = self.b.ask(bytes(q))
        self.assertEqual(r, struct.pack(">HHHHHH", 99, 0x8101, 0, 0, 0, 0))
        q[5] = 1
        q[3] = 0x00
        q[2] = 0x29                                  # opcode UPDATE, RD
        r = self.b.ask(bytes(q))
        self.assertEqual(header(r)["rcode"], 4)      # NOTIMP
        # A response gets no reply at all.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1.0)
            s.sendto(b"\0\1\x81\x80" + bytes(q[4:]), ("127.0.0.1", self.b.port))
            with self.assertRaises(socket.timeout):
                s.recv(512)

    def test_tcp_pipelined(self):
        names = ["n%d.lab.internal" % i if i % 2 else "example.test" for i in range(50)]
        with socket.create_connection(("127.0.0.1", self.b.port), timeout=u.IO_TIMEOUT) as s:
            s.sendall(b"".join(tcp_frame(query(n, qid=i)) for i, n in enumerate(names)))
            got = {}
            for _ in names:
                r = tcp_read(s)
                got[header(r)["id"]] = header(r)["rcode"]
        self.assertEqual(got, {i: 3 if i % 2 else 0 for i in range(50)})

    def test_tcp_idle_timeout(self):
        with socket.create_connection(("127.0.0.1", self.b.port), timeout=30) as s:
            t0 = time.monotonic()
            self.assertEqual(s.recv(1), b"")         # berth closes it
            idle = time.monotonic() - t0
        print(f"\n  idle TCP connection closed after {idle:.1f} s", file=sys.stderr)
        self.assertGreater(idle, 5)
        self.assertLess(idle, 25)


class Garbage(unittest.TestCase):
    def test_fifty_thousand_bad_packets_then_an_answer(self):
        with Dnsmasq() as dm, DnsBerth(["127.0.0.1:%d" % dm.port]) as b:
            rng = random.Random(20240501)
            good = query("example.test", qid=4321)
            packets = []
            for i in range(50000):
                kind = i % 5
                if kind == 0:
                    p = rng.randbytes(rng.randrange(0, 600))
                elif kind == 1:
                    p = good[:rng.randrange(0, len(good))]         # truncated
                elif kind == 2:
                    p = bytearray(good)
                    for _ in range(rng.randrange(1, 6)):
                        p[rng.randrange(len(p))] = rng.randrange(256)
                    p = bytes(p)
                elif kind == 3:
                    p = good[:12] + rng.randbytes(rng.randrange(0, 300))
                else:
                    p = good + rng.randbytes(rng.randrange(1, 50))   # trailing junk
                packets.append(p)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.setblocking(False)
                for i, p in enumerate(packets):
                    try:
                        s.sendto(p, ("127.0.0.1", b.port))
                    except BlockingIOError:
                        time.sleep(0.001)
                    if i % 500 == 0:
                        time.sleep(0.002)          # let berth keep up a little
                        while True:
                            try:
                                s.recv(65535)
                            except BlockingIOError:
                                break
            # Garbage over TCP too: frames of junk, then a real query.
            with socket.create_connection(("127.0.0.1", b.port), timeout=u.IO_TIMEOUT) as t:
                for p in packets[:200]:
                    t.sendall(tcp_frame(p))
                t.sendall(tcp_frame(good))
                t.settimeout(u.IO_TIMEOUT)
                deadline = time.monotonic() + u.IO_TIMEOUT
                while time.monotonic() < deadline:
                    r = tcp_read(t)
                    if header(r)["id"] == 4321 and header(r)["an"] == 1:
                        break
                else:
                    self.fail("no answer after TCP garbage")
            self.assertTrue(b.alive(), b.stderr())
            r = u.poll_until(lambda: self._try(b, good), 20, 0.2)
            self.assertTrue(r, "no correct answer after the garbage")
            self.assertEqual(r[-4:], bytes([192, 0, 2, 10]))
            self.assertEqual(header(r)["id"], 4321)

    @staticmethod
    def _try(b, q):
        try:
            return b.ask(q, timeout=2)
        except OSError:
            return None


class Upstreams(unittest.TestCase):
    def test_dead_upstream_servfail_within_timeout(self):
        # A black hole: a socket that never answers. Per-upstream timeout
        # is 2 s; clients commonly wait 5.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
            hole.bind(("127.0.0.1", 0))
            with DnsBerth(["127.0.0.1:%d" % hole.getsockname()[1]]) as b:
                t0 = time.monotonic()
                r = b.ask(query("example.test", qid=5), timeout=10)
                took = time.monotonic() - t0
                self.assertEqual(header(r)["rcode"], 2)          # SERVFAIL
                self.assertLess(took, 4.5)
                self.assertGreater(took, 1.0)
                if DIG:
                    out = dig(b.port, "example.test")
                    self.assertEqual(status(out), "SERVFAIL", out)
        # Nothing listening: the port is unreachable, SERVFAIL at once.
        port = u.free_port()
        with DnsBerth(["127.0.0.1:%d" % port]) as b:
            t0 = time.monotonic()
            r = b.ask(query("example.test", qid=6), timeout=10)
            self.assertEqual(header(r)["rcode"], 2)
            self.assertLess(time.monotonic() - t0, 2.0)

    def test_failover_to_live_upstream(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole, Dnsmasq() as dm:
            hole.bind(("127.0.0.1", 0))
            with DnsBerth(["127.0.0.1:%d" % hole.getsockname()[1],
                           "127.0.0.1:%d" % dm.port]) as b:
                r = b.ask(query("example.test", qid=8), timeout=10)
                self.assertEqual(header(r)["an"], 1)

    def test_flood_to_dead_upstream_is_bounded(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
            hole.bind(("127.0.0.1", 0))
            with DnsBerth(["127.0.0.1:%d" % hole.getsockname()[1]]) as b:
                fds0, rss0 = b.fds(), rss_kib(b.pid)
                peak_fds = fds0
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
                    s.setblocking(False)
                    for i in range(20000):
                        try:
                            s.sendto(query("n%d.example.test" % i, qid=i & 0xFFFF),
                                     ("127.0.0.1", b.port))
                        except BlockingIOError:
                            time.sleep(0.001)
                        if i % 1000 == 0:
                            peak_fds = max(peak_fds, b.fds())
                            time.sleep(0.01)
                    peak_fds = max(peak_fds, b.fds())
                    servfail = 0
                    end = time.monotonic() + 10
                    while time.monotonic() < end:
                        try:
                            servfail += header(s.recv(65535))["rcode"] == 2
                        except BlockingIOError:
                            time.sleep(0.01)
                rss1 = rss_kib(b.pid)
                print(f"\n  flood: {servfail} SERVFAIL replies, fds {fds0} -> peak {peak_fds}, "
                      f"RSS {rss0} -> {rss1} KiB", file=sys.stderr)
                self.assertGreater(servfail, 1000)
                self.assertLessEqual(peak_fds, fds0 + 1024 + 8)   # in-flight bound
                self.assertLess(rss1 - rss0, 300 * 1024)          # generous: ASan builds
                self.assertTrue(u.poll_until(lambda: b.fds() <= fds0 + 2, 10), b.fds())
                r = b.ask(query("nope.docker", qid=1), timeout=10)
                self.assertEqual(header(r)["rcode"], 3)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@unittest.skipUnless(u.have_ipv6(), "no IPv6 loopback")
class Ipv6(unittest.TestCase):
    def test_ipv6_listener(self):
        with Dnsmasq() as dm, DnsBerth(["127.0.0.1:%d" % dm.port], v6=True) as b:
            r = b.ask(query("example.test", qid=2), host="::1")
            self.assertEqual(header(r)["an"], 1)
            with socket.create_connection(("::1", b.port), timeout=u.IO_TIMEOUT) as s:
                s.sendall(tcp_frame(query("nope.docker", qid=3)))
                self.assertEqual(header(tcp_read(s))["rcode"], 3)
            if DIG:
                out = dig(b.port, "+tcp", "example.test", server="::1")
                self.assertEqual(status(out), "NOERROR", out)


@unittest.skipUnless(DNSPERF, "dnsperf not installed")
class Dnsperf(unittest.TestCase):
    """Behaviour under load: every query answered. Rates are printed for
    information only (timing belongs in bench/)."""

    def run_perf(self, port, names, seconds=3):
        with u.tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
            f.write("".join(f"{n} {t}\n" for n, t in names))
            f.flush()
            p = subprocess.run([DNSPERF, "-s", "127.0.0.1", "-p", str(port), "-d", f.name,
                                "-l", str(seconds), "-c", "2", "-q", "50", "-t", "10"],
                               capture_output=True, text=True, timeout=seconds + 60)
        out = p.stdout + p.stderr
        sent = int(re.search(r"Queries sent:\s+(\d+)", out).group(1))
        done = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
        qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
        return sent, done, qps, out

    def test_dnsperf_local_and_forwarded(self):
        with Dnsmasq() as dm, DnsBerth(["127.0.0.1:%d" % dm.port]) as b:
            for what, names in (("local", [("nope.docker", "A"), ("docker", "SOA")]),
                                ("forwarded", [("example.test", "A")])):
                sent, done, qps, out = self.run_perf(b.port, names)
                print(f"\n  dnsperf {what}: {done}/{sent} answered, {qps:.0f} queries/s",
                      file=sys.stderr)
                self.assertGreater(sent, 100, out)
                self.assertGreaterEqual(done, sent * 0.999, out)
            self.assertTrue(b.alive())


def can_netns():
    if os.geteuid() != 0 or not IP or not DIG:
        return False
    r = subprocess.run([IP, "netns", "add", "berthdnsprobe%d" % os.getpid()],
                       capture_output=True)
    if r.returncode:
        return False
    subprocess.run([IP, "netns", "del", "berthdnsprobe%d" % os.getpid()], capture_output=True)
    return True


@unittest.skipUnless(can_netns(), "needs root, iproute2, dig and network namespaces")
class Strangers(unittest.TestCase):
    """A client outside loopback and outside any Docker network berth knows
    (a namespace of this test's own, over a veth pair): the zone answers
    it, forwarding does not."""

    def setUp(self):
        self.ns = "berthdns%d" % os.getpid()
        self.veth = "bdns%d" % (os.getpid() % 100000)
        used = subprocess.run([IP, "-o", "addr"], capture_output=True, text=True).stdout
        for _ in range(100):
            net = "10.252.%d" % random.randrange(1, 255)
            if net + "." not in used:
                break
        self.host_ip, self.ns_ip = net + ".1", net + ".2"
        self.addCleanup(self._teardown)
        for cmd in (["netns", "add", self.ns],
                    ["link", "add", self.veth, "type", "veth", "peer", "name", self.veth + "p"],
                    ["link", "set", self.veth + "p", "netns", self.ns],
                    ["addr", "add", self.host_ip + "/30", "dev", self.veth],
                    ["link", "set", self.veth, "up"],
                    ["-n", self.ns, "addr", "add", self.ns_ip + "/30", "dev", self.veth + "p"],
                    ["-n", self.ns, "link", "set", self.veth + "p", "up"],
                    ["-n", self.ns, "link", "set", "lo", "up"]):
            subprocess.run([IP] + cmd, check=True, capture_output=True)

    def _teardown(self):
        subprocess.run([IP, "link", "del", self.veth], capture_output=True)
        subprocess.run([IP, "netns", "del", self.ns], capture_output=True)

    def test_refused_outside_but_zone_answers(self):
        with Dnsmasq() as dm, DnsBerth(["127.0.0.1:%d" % dm.port], host=self.host_ip) as b:
            # Bound only where told.
            mine = u.socket_inodes(b.pid)
            for proto in ("udp", "tcp"):
                ents = [e for e in u._proc_net_entries(proto)
                        if e[0] == b.port and e[3] in mine and e[1] == 0]
                self.assertTrue(ents)
                for e in ents:
                    ip = socket.inet_ntoa(struct.pack("<I", int(e[4].split(":")[0], 16)))
                    self.assertEqual(ip, self.host_ip)

            def ns_dig(*args):
                p = subprocess.run([IP, "netns", "exec", self.ns, DIG, "@" + self.host_ip,
                                    "-p", str(b.port), "+time=5", "+tries=1"] + list(args),
                                   capture_output=True, text=True, timeout=30)
                return p.stdout + p.stderr
            out = ns_dig("example.test")
            self.assertEqual(status(out), "REFUSED", out)
            out = ns_dig("+tcp", "example.test")
            self.assertEqual(status(out), "REFUSED", out)
            out = ns_dig("nope.docker")
            self.assertEqual(status(out), "NXDOMAIN", out)
            # From the host itself (a local address, not loopback) it is
            # also a stranger; loopback clients are not.
            self.assertEqual(status(dig(b.port, "example.test", server=self.host_ip)),
                             "REFUSED")


if __name__ == "__main__":
    unittest.main(verbosity=2)
