#!/usr/bin/python3
"""berth started before its addresses exist, as at boot before dockerd made
its bridge: --publish and --dns on an address no interface has yet bind
with IP_FREEBIND/IPV6_FREEBIND, berth says at start-up which address is not
configured, and serves as soon as the address appears.

All of it runs in a network namespace the test makes (`ip netns add`: lo
up, a dummy interface (a veth pair inside it without the dummy driver), no
default route): a TCP echo backend and dnsmasq
(the upstream) on the namespace's loopback, berth with `--publish` and
`--dns` on 10.250.10.1 and fd00:be:f::1, then those addresses are added to
the dummy interface, and a TCP client, dig over UDP and TCP (a name of
berth's zone, and one forwarded to dnsmasq) must get answers through them,
IPv4 and IPv6. Traffic never leaves the namespace.

Needs root, iproute2, dig and dnsmasq: exits 77 (ctest: skipped) naming
what is missing. berth's log and pid file go under ${BERTH_TEST_ROOT:-/tmp}.
Cleanup: every process by its pid, then `ip netns del` of this test's own
namespace."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402
import netns_util as nu  # noqa: E402

IP4, IP6 = "10.250.10.1", "fd00:be:f::1"
PORT = 8080
ECHO = r"""
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True)
def serve(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""
CLIENT = r"""
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
try:
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect((host, port))
        s.sendall(b"freebind " + host.encode())
        print(s.recv(100).decode(), flush=True)
except OSError as e:
    print("error:", e, flush=True)
"""


class Freebind(unittest.TestCase):
    def setUp(self):
        root = os.environ.get("BERTH_TEST_ROOT", "/tmp")
        self.tmp = tempfile.mkdtemp(prefix="berth-freebind-", dir=root)
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.net = nu.Netns(f"berthfb{os.getpid()}")
        self.addCleanup(self.net.close)
        # A dummy interface, or where the kernel has no dummy driver a veth
        # pair with both ends inside the namespace.
        try:
            self.net.ip("link", "add", "fb0", "type", "dummy")
        except AssertionError:
            self.net.ip("link", "add", "fb0", "type", "veth", "peer", "name", "fb1")
            self.net.ip("link", "set", "fb1", "up")
        self.net.ip("link", "set", "fb0", "up")

    def run_in(self, argv):
        return self.net.run(argv, check=False).stdout.strip()

    def dig(self, server, name, *extra):
        # From loopback: berth forwards for local and container clients only
        # (a client from 10.250.10.1 itself would get REFUSED).
        src = "::1" if ":" in server else "127.0.0.1"
        return self.run_in([nu.tool("dig"), f"@{server}", "-b", src, "-p", "53", name,
                            "+time=2", "+tries=2", "+noall", "+answer", "+comments"]
                           + list(extra))

    def test_serves_once_the_address_appears(self):
        # The namespace has no route to either address yet.
        routes = self.net.ip("route", "show") + self.net.ip("-6", "route", "show")
        self.assertNotIn("default", routes)
        echo = self.net.spawn([sys.executable, "-c", ECHO], stdout=subprocess.PIPE, text=True)
        backend = int(echo.stdout.readline())
        dns_port = 5353
        self.net.spawn([nu.tool("dnsmasq"), "-k", "-p", str(dns_port),
                        "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
                        "--no-hosts", "--address=/example.test/192.0.2.10",
                        f"--pid-file={os.path.join(self.tmp, 'dnsmasq.pid')}"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log_path = os.path.join(self.tmp, "berth.log")
        log = open(log_path, "w")
        self.addCleanup(log.close)
        berth = self.net.spawn([u.BERTH, "--no-docker",
                                "-p", f"{IP4}:{PORT}:127.0.0.1:{backend}",
                                "-p", f"[{IP6}]:{PORT}:127.0.0.1:{backend}",
                                "--dns", f"{IP4}:53", "--dns", f"[{IP6}]:53",
                                "--upstream", f"127.0.0.1:{dns_port}"],
                               stdout=subprocess.DEVNULL, stderr=log)
        with open(os.path.join(self.tmp, "berth.pid"), "w") as f:
            f.write(f"{berth.pid}\n")

        def text():
            with open(log_path) as f:
                return f.read()
        up = u.poll_until(lambda: "dns: zone" in text() or berth.poll() is not None, 20)
        self.assertTrue(up and berth.poll() is None,
                        f"berth did not come up (rc {berth.poll()}):\n{text()}")
        for ip in (IP4, IP6):
            self.assertIn(f"{ip} is not configured on this host yet", text())
        # Before the address exists: nothing there to reach.
        self.assertTrue(self.run_in([sys.executable, "-c", CLIENT, IP4, str(PORT)])
                        .startswith("error:"))
        # dockerd makes its bridge: the addresses appear (IPv6 without
        # duplicate address detection, so it is usable at once).
        self.net.ip("addr", "add", f"{IP4}/24", "dev", "fb0")
        self.net.ip("addr", "add", f"{IP6}/64", "dev", "fb0", "nodad")
        for ip in (IP4, IP6):
            got = self.run_in([sys.executable, "-c", CLIENT, ip, str(PORT)])
            self.assertEqual(got, f"freebind {ip}", f"tcp through [{ip}]:{PORT}\n{text()}")
            for extra in ([], ["+tcp"]):
                out = self.dig(ip, "example.test", *extra)
                self.assertIn("192.0.2.10", out, f"forwarded via {ip} {extra}:\n{out}")
                out = self.dig(ip, "nothing.docker", *extra)
                self.assertIn("NXDOMAIN", out, f"zone answer via {ip} {extra}:\n{out}")
        sys.stderr.write("    served on both addresses after they were added\n")
        berth.send_signal(signal.SIGTERM)
        self.assertEqual(berth.wait(10), 0, text())


if __name__ == "__main__":
    nu.main_needing_root("test_freebind", ("ip", "dig", "dnsmasq"))
