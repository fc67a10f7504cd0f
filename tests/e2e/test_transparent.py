#!/usr/bin/python3
"""Transparent mode (--transparent) across network namespaces the test
makes: the target sees the client's address (and, for TCP, its port), and
where that cannot work berth connects normally and says why, once.

Four namespaces, linked by veth pairs made inside them (nothing in the
machine's own namespace, no default route anywhere):

    client  10.251.1.2/24  fd00:251:1::2/64   routes to the container
            |                                  network via the host
    host    10.251.1.1/24  fd00:251:1::1/64   berth; bridge br0 with
            10.251.2.1/24  fd00:251:2::1/64   the two below
            |
    ctr     10.251.2.2/24  fd00:251:2::2/64   TCP and UDP servers telling
    ctr2    10.251.2.3/24  fd00:251:2::3/64   each peer what they saw

The host gets the kernel's tproxy setup (Documentation/networking/
tproxy.rst: `ip rule add fwmark 1 lookup 100`, `ip route add local
0.0.0.0/0 dev lo table 100`, the IPv6 twins, an nft rule marking packets
of transparent sockets); then the same cases run again with
scripts/berth-tproxy's setup instead (skipped, said so, when the script is
missing). Checked:

- TCP and UDP, IPv4 and IPv6, from the client: the server sees the
  client's address and port; with a berth without --transparent it sees
  the host's 10.251.2.1;
- fallbacks, each connecting normally (the server sees the host) and each
  logged once per mapping over two connections: a client in the host
  namespace (the host's own address), a client on the container's network
  (ctr2: the target would answer it directly), an IPv6 client of an IPv4
  target, and a second connection from one client port at once to the
  same server through another port of berth (the same addresses:
  EADDRNOTAVAIL); a client port used again while berth's last socket with
  it is in TIME_WAIT still goes transparently (SO_REUSEADDR);
- the host not set up (no rules; the ip rule without the nft rule):
  berth's start-up check names what is missing, and the transparent
  mappings' connections go normally, said once per mapping.

Needs root, iproute2 and nft: exits 77 (ctest: skipped) naming what is
missing. berth's logs under ${BERTH_TEST_ROOT:-/tmp}; processes stopped by
pid; every namespace (and with it all the rules) deleted at the end."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402
import netns_util as nu  # noqa: E402

TPROXY = os.path.join(u.REPO, "scripts", "berth-tproxy")
SERVER_PORT = 9000
SERVER = r"""
import socket, sys, threading
port = int(sys.argv[1])
def serve(c, peer):
    with c:
        c.sendall(f"peer {peer[0]} {peer[1]}\n".encode())
        c.settimeout(10)
        try:
            while c.recv(4096):
                pass
        except OSError:
            pass
def tcp(fam, host):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, port))
    s.listen(64)
    return s
def accept(s):
    while True:
        c, peer = s.accept()
        threading.Thread(target=serve, args=(c, peer), daemon=True).start()
def udp(fam, host):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, port))
    return s
def answer(s):
    while True:
        d, peer = s.recvfrom(2048)
        s.sendto(f"peer {peer[0]} {peer[1]}\n".encode(), peer)
socks = [(accept, tcp(socket.AF_INET, "0.0.0.0")), (accept, tcp(socket.AF_INET6, "::")),
         (answer, udp(socket.AF_INET, "0.0.0.0")), (answer, udp(socket.AF_INET6, "::"))]
for fn, s in socks:
    threading.Thread(target=fn, args=(s,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""
# proto host port [source port]: prints "peer IP PORT from LOCALPORT" (what
# the server saw, and the client's own port), or "error: ...".
CLIENT = r"""
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
src = int(sys.argv[4]) if len(sys.argv) > 4 else 0
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
try:
    with socket.socket(fam, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        if src:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", src))
        s.connect((host, port))
        if proto == "tcp":
            line = b""
            while not line.endswith(b"\n"):
                d = s.recv(100)
                if not d:
                    break
                line += d
            # The client closes first: berth's socket towards the server
            # ends in TIME_WAIT.
            s.shutdown(socket.SHUT_WR)
            while s.recv(100):
                pass
        else:
            s.send(b"hello")
            line = s.recv(100)
        print(line.decode().strip(), "from", s.getsockname()[1], flush=True)
except OSError as e:
    print("error:", e, flush=True)
"""

# host port1 port2 source-port: two TCP connections from one client port at
# once, to two ports of berth that lead to the same server; prints what the
# server saw on each, one line each.
PAIR = r"""
import socket, sys
host, p1, p2, src = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
socks = []
try:
    for port in (p1, p2):
        s = socket.socket()
        socks.append(s)
        s.settimeout(5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", src))
        s.connect((host, port))
        line = b""
        while not line.endswith(b"\n"):
            d = s.recv(100)
            if not d:
                break
            line += d
        print(line.decode().strip(), "from", s.getsockname()[1], flush=True)
except OSError as e:
    print("error:", e, flush=True)
for s in socks:
    s.close()
"""


class Transparent(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        root = os.environ.get("BERTH_TEST_ROOT", "/tmp")
        cls.tmp = tempfile.mkdtemp(prefix="berth-transparent-", dir=root)
        pid = os.getpid()
        cls.ns = {k: f"berthtp-{k}-{pid}" for k in ("c", "h", "t", "t2")}
        cls.net = {}  # filled one by one: cleanup() closes those made
        try:
            cls.build()
        except BaseException:
            cls.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.cleanup()

    # ---- plumbing ----

    @classmethod
    def build(cls):
        for k in ("c", "h", "t", "t2"):
            cls.net[k] = nu.Netns(cls.ns[k])
        n = cls.ns
        h = cls.net["h"]
        # veth pairs made inside the namespaces: the host end first.
        h.ip("link", "add", "vc", "type", "veth", "peer", "name", "eth0", "netns", n["c"])
        h.ip("link", "add", "br0", "type", "bridge")
        for k, v in (("t", "vt"), ("t2", "vt2")):
            h.ip("link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", n[k])
            h.ip("link", "set", v, "master", "br0")
            h.ip("link", "set", v, "up")
        cls.addr("h", "vc", "10.251.1.1/24", "fd00:251:1::1/64")
        cls.addr("h", "br0", "10.251.2.1/24", "fd00:251:2::1/64")
        cls.addr("c", "eth0", "10.251.1.2/24", "fd00:251:1::2/64")
        cls.addr("t", "eth0", "10.251.2.2/24", "fd00:251:2::2/64")
        cls.addr("t2", "eth0", "10.251.2.3/24", "fd00:251:2::3/64")
        # Each side reaches the other's network through the host; nothing
        # else is routed anywhere.
        cls.net["c"].ip("route", "add", "10.251.2.0/24", "via", "10.251.1.1")
        cls.net["c"].ip("-6", "route", "add", "fd00:251:2::/64", "via", "fd00:251:1::1")
        for k in ("t", "t2"):
            cls.net[k].ip("route", "add", "10.251.1.0/24", "via", "10.251.2.1")
            cls.net[k].ip("-6", "route", "add", "fd00:251:1::/64", "via", "fd00:251:2::1")
        h.run(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])
        # The client reuses a port of a connection it closed a second ago.
        cls.net["c"].run(["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"])
        srv = cls.net["t"].spawn([sys.executable, "-c", SERVER, str(SERVER_PORT)],
                                 stdout=subprocess.PIPE, text=True)
        if srv.stdout.readline().strip() != "ready":
            raise AssertionError("the server in the container namespace did not start")

    @classmethod
    def addr(cls, ns, dev, v4, v6):
        net = cls.net[ns]
        net.ip("addr", "add", v4, "dev", dev)
        net.ip("addr", "add", v6, "dev", dev, "nodad")
        net.ip("link", "set", dev, "up")

    @classmethod
    def cleanup(cls):
        # Each stops its processes by pid; the links and rules go with it.
        for net in reversed(list(cls.net.values())):
            net.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- the host's tproxy setup ----

    KERNEL_DOC = """table inet t {
  chain p {
    type filter hook prerouting priority mangle; policy accept;
    socket transparent 1 meta mark set 1 accept
  }
}
"""

    def kernel_doc_up(self):
        h = self.net["h"]
        for f, net in (("-4", "0.0.0.0/0"), ("-6", "::/0")):
            h.ip(f, "rule", "add", "fwmark", "1", "lookup", "100")
            h.ip(f, "route", "add", "local", net, "dev", "lo", "table", "100")
        h.run([nu.tool("nft"), "-f", "-"], input=self.KERNEL_DOC)

    def kernel_doc_down(self):
        h = self.net["h"]
        for f, net in (("-4", "0.0.0.0/0"), ("-6", "::/0")):
            h.ip(f, "rule", "del", "fwmark", "1", "lookup", "100")
            h.ip(f, "route", "del", "local", net, "dev", "lo", "table", "100")
        h.run([nu.tool("nft"), "delete", "table", "inet", "t"])

    # ---- berth and clients ----

    def berth(self, name, *args):
        log_path = os.path.join(self.tmp, f"{name}.log")
        log = open(log_path, "w")
        self.addCleanup(log.close)
        p = self.net["h"].spawn([u.BERTH, "--no-docker"] + list(args),
                                stdout=subprocess.DEVNULL, stderr=log)
        with open(os.path.join(self.tmp, f"{name}.pid"), "w") as f:
            f.write(f"{p.pid}\n")
        want = sum(1 for a in args if a == "-p")

        def text():
            with open(log_path) as f:
                return f.read()
        up = u.poll_until(lambda: text().count("listening: ") >= want or
                          p.poll() is not None, 20)
        self.assertTrue(up and p.poll() is None,
                        f"berth did not come up (rc {p.poll()}):\n{text()}")

        def stop():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                self.assertEqual(p.wait(10), 0, text())
        self.addCleanup(stop)
        return text

    def client(self, ns, proto, host, port, src=None):
        argv = [sys.executable, "-c", CLIENT, proto, host, str(port)]
        if src:
            argv.append(str(src))
        got = self.net[ns].run(argv).stdout.strip()
        sys.stderr.write(f"    {ns:>2} {proto} -> [{host}]:{port}: {got}\n")
        return got

    def assert_sees(self, got, ip, same_port=False):
        words = got.split()
        self.assertEqual(words[:2], ["peer", ip], got)
        if same_port:  # "peer IP PORT from PORT"
            self.assertEqual(words[2], words[4], f"the client's port: {got}")

    def transparent_cases(self, text):
        # TCP and UDP, both families: the server sees the client itself.
        for proto in ("tcp", "udp"):
            self.assert_sees(self.client("c", proto, "10.251.1.1", 8080),
                             "10.251.1.2", same_port=True)
            self.assert_sees(self.client("c", proto, "fd00:251:1::1", 8080),
                             "fd00:251:1::2", same_port=True)
        self.assertNotIn("transparent:", text())

    # ---- the cases ----

    def test_1_target_sees_the_client(self):
        self.kernel_doc_up()
        self.addCleanup(self.kernel_doc_down)
        text = self.berth(
            "transparent", "--transparent",
            "-p", "10.251.1.1:8080:10.251.2.2:9000",
            "-p", "10.251.1.1:8080:10.251.2.2:9000/udp",
            "-p", "[fd00:251:1::1]:8080:[fd00:251:2::2]:9000",
            "-p", "[fd00:251:1::1]:8080:[fd00:251:2::2]:9000/udp")
        plain = self.berth("plain", "-p", "10.251.1.1:8090:10.251.2.2:9000",
                           "-p", "10.251.1.1:8090:10.251.2.2:9000/udp")
        sys.stderr.write("    kernel doc's rules (fwmark 1, table 100, nft socket "
                         "transparent):\n")
        self.transparent_cases(text)
        # Without --transparent the server sees the host.
        for proto in ("tcp", "udp"):
            self.assert_sees(self.client("c", proto, "10.251.1.1", 8090), "10.251.2.1")
        self.assertNotIn("transparent", plain())

    def test_2_berth_tproxy(self):
        if not os.access(TPROXY, os.X_OK):
            self.skipTest(f"{TPROXY} is not there")
        self.net["h"].run([TPROXY, "up"])
        sys.stderr.write("    berth-tproxy up:\n")
        try:
            text = self.berth(
                "tproxy", "--transparent",
                "-p", "10.251.1.1:8080:10.251.2.2:9000",
                "-p", "10.251.1.1:8080:10.251.2.2:9000/udp",
                "-p", "[fd00:251:1::1]:8080:[fd00:251:2::2]:9000",
                "-p", "[fd00:251:1::1]:8080:[fd00:251:2::2]:9000/udp")
            self.transparent_cases(text)
        finally:
            self.doCleanups()  # berth first, then the rules
            self.net["h"].run([TPROXY, "down"])

    def test_3_fallbacks_connect_normally(self):
        self.kernel_doc_up()
        self.addCleanup(self.kernel_doc_down)
        text = self.berth(
            "fallbacks", "--transparent",
            "-p", "10.251.1.1:8080:10.251.2.2:9000",
            "-p", "10.251.1.1:8080:10.251.2.2:9000/udp",
            "-p", "10.251.2.1:8082:10.251.2.2:9000",
            "-p", "[fd00:251:1::1]:8081:10.251.2.2:9000",
            "-p", "10.251.1.1:8083:10.251.2.2:9000")
        # Twice each: the reason is said once.
        for _ in range(2):
            # The host's own address: berth cannot take it from itself.
            self.assert_sees(self.client("h", "tcp", "10.251.1.1", 8080), "10.251.2.1")
            self.assert_sees(self.client("h", "udp", "10.251.1.1", 8080), "10.251.2.1")
            # On the container's network: the server would answer ctr2
            # directly, past berth.
            self.assert_sees(self.client("t2", "tcp", "10.251.2.1", 8082), "10.251.2.1")
            # An IPv6 client cannot be an IPv4 socket's source.
            self.assert_sees(self.client("c", "tcp", "fd00:251:1::1", 8081),
                             "10.251.2.1")
        # The same client port again at once: berth's last socket with these
        # addresses is in TIME_WAIT, which a socket bound with SO_REUSEADDR
        # takes over (timestamps on): the target sees the client again.
        first = self.client("c", "tcp", "10.251.1.1", 8080, src=40001)
        self.assert_sees(first, "10.251.1.2", same_port=True)
        tw = self.net["h"].run([nu.tool("ss"), "-Htan", "state", "time-wait", "src",
                                "10.251.1.2:40001"]).stdout
        self.assertIn("10.251.2.2:9000", tw, "berth's socket is in TIME_WAIT")
        time.sleep(1.2)  # the client's own TIME_WAIT may be reused (tw_reuse)
        again = self.client("c", "tcp", "10.251.1.1", 8080, src=40001)
        self.assert_sees(again, "10.251.1.2", same_port=True)
        # Two connections from one client port at once, through two ports of
        # berth to the same server: the second would repeat the first's
        # addresses (EADDRNOTAVAIL) and goes normally.
        pair = self.net["c"].run([sys.executable, "-c", PAIR, "10.251.1.1", "8080", "8083",
                                  "40002"]).stdout.strip().splitlines()
        sys.stderr.write("".join(f"     c tcp pair from 40002: {x}\n" for x in pair))
        self.assertEqual(len(pair), 2, pair)
        self.assert_sees(pair[0], "10.251.1.2", same_port=True)
        self.assert_sees(pair[1], "10.251.2.1")
        lines = [x for x in text().splitlines()
                 if "transparent:" in x and "times in the last" not in x]
        sys.stderr.write("".join(f"    log: {x}\n" for x in lines))
        # Once per reason and mapping: the host's own address twice (the
        # TCP and the UDP mapping), each other reason once.
        want = [("the client is an address of this host", "client 10.251.1.1:", 2),
                ("are both in 10.251.2.0/24", "client 10.251.2.3:", 1),
                ("an IPv6 client cannot be the source towards the IPv4 target",
                 "client [fd00:251:1::2]:", 1),
                ("connect from the client's address: Cannot assign requested",
                 "client 10.251.1.2:40002", 1)]
        for words, who, times in want:
            said = [x for x in lines if words in x]
            self.assertEqual(len(said), times, f"{words!r} said {times}x:\n{text()}")
            self.assertTrue(all(who in x for x in said), f"{who}:\n{text()}")
        self.assertEqual(len(lines), 5, text())

    def test_4_host_not_set_up(self):
        # No rules at all, then the ip rule and route without the nft rule:
        # berth's start-up check names what is missing, and every
        # connection of the transparent mappings goes normally (without the
        # check a reply to the client's address would be forwarded to the
        # client, and the connection would hang).
        for setup in ("none", "no nft rule"):
            if setup == "no nft rule":
                self.net["h"].ip("rule", "add", "fwmark", "1", "lookup", "100")
                self.net["h"].ip("route", "add", "local", "0.0.0.0/0", "dev", "lo", "table",
                                 "100")
            text = self.berth(
                f"broken-{setup.replace(' ', '-')}", "--transparent",
                "-p", "10.251.1.1:8080:10.251.2.2:9000",
                "-p", "10.251.1.1:8080:10.251.2.2:9000/udp")
            sys.stderr.write(f"    host set up: {setup}:\n")
            for _ in range(2):
                for proto in ("tcp", "udp"):
                    self.assert_sees(self.client("c", proto, "10.251.1.1", 8080),
                                     "10.251.2.1")
            startup = [x for x in text().splitlines()
                       if "transparent mode cannot work" in x]
            said = [x for x in text().splitlines()
                    if "transparent: the host is not set up" in x]
            sys.stderr.write("".join(f"    log: {x}\n" for x in startup + said))
            self.assertEqual(len(startup), 1, text())
            # Once per mapping (TCP, UDP) for four connections.
            self.assertEqual(len(said), 2, text())
            self.doCleanups()
        self.net["h"].ip("rule", "del", "fwmark", "1", "lookup", "100")


if __name__ == "__main__":
    nu.main_needing_root("test_transparent", ("ip", "nft"))
