#!/usr/bin/python3
"""UDP forwarding through berth: many clients each get their own replies,
datagram boundaries and sizes (0 to 65507 bytes) survive, replies come from
the address the client sent to, idle flows expire after --udp-timeout and
traffic either way refreshes them, IPv6 listener to IPv4 backend."""

import collections
import os
import random
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402


def setUpModule():
    u.require_berth()
    u.raise_fd_limit()


class UdpForward(u.BerthFixture):
    def __init__(self, backend_port, extra=(), listen_host="127.0.0.1"):
        self.port = u.free_port()
        host = f"[{listen_host}]" if ":" in listen_host else listen_host
        self.berth = u.Berth(list(extra) +
                             ["-p", f"{host}:{self.port}:127.0.0.1:{backend_port}/udp"])
        try:
            self.berth.wait_bound([("udp", self.port)])
        except BaseException:
            self.berth.close()
            raise

    def stable_fds(self):
        def stable():
            a = self.berth.fds()
            time.sleep(0.3)
            return a if self.berth.fds() == a else None
        n = u.poll_until(stable, 10)
        if n is None:
            raise AssertionError("berth's fd count never settled")
        return n



class Flows(unittest.TestCase):
    def test_50_clients_get_their_own_replies(self):
        nclients, rounds = 50, 20
        with u.UdpEcho(prefer_c=False) as echo, UdpForward(echo.port) as fw:
            socks = [u.udp_socket(bind=("127.0.0.1", 0)) for _ in range(nclients)]
            try:
                got = collections.defaultdict(list)
                for r in range(rounds):
                    for i, s in enumerate(socks):
                        s.sendto(b"client-%02d round-%02d" % (i, r), ("127.0.0.1", fw.port))
                    for i, s in enumerate(socks):
                        try:
                            data, src = s.recvfrom(2000)
                        except socket.timeout:
                            self.fail(f"client {i} got no reply in round {r}")
                        self.assertEqual(src, ("127.0.0.1", fw.port))
                        got[i].append(data)
                for i in range(nclients):
                    self.assertEqual(got[i], [b"client-%02d round-%02d" % (i, r)
                                              for r in range(rounds)],
                                     f"client {i} got someone else's replies")
                # The backend saw one source per client.
                self.assertEqual(len(set(echo.sources)), nclients)
            finally:
                for s in socks:
                    s.close()

    def test_datagram_boundaries(self):
        rng = random.Random(7)
        with u.UdpEcho() as echo, UdpForward(echo.port) as fw, \
                u.udp_socket() as s:
            sent = [rng.randbytes(rng.randrange(1, 3000)) for _ in range(40)]
            for d in sent:
                s.sendto(d, ("127.0.0.1", fw.port))
            got = []
            for _ in sent:
                try:
                    got.append(s.recvfrom(70000)[0])
                except socket.timeout:
                    break
            self.assertEqual(sorted(got), sorted(sent),
                             "each datagram comes back whole, none merged or split")
            if got != sent:
                print("\n  note: replies were reordered", file=sys.stderr)

    def test_sizes(self):
        with u.UdpEcho() as echo, UdpForward(echo.port) as fw, \
                u.udp_socket() as s:
            for size in (0, 1, 1472, 9000, 65507):
                with self.subTest(size=size):
                    data = random.Random(size).randbytes(size)
                    r, src = u.udp_roundtrip(s, data, ("127.0.0.1", fw.port))
                    self.assertIsNotNone(r, f"{size}-byte datagram not echoed intact")
                    self.assertEqual(len(r), size)
            self.assertTrue(fw.berth.alive())


class SourceAddress(unittest.TestCase):
    def test_reply_comes_from_the_address_sent_to(self):
        with u.UdpEcho() as echo, \
                UdpForward(echo.port, listen_host="0.0.0.0") as fw:
            for dst in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
                with self.subTest(dst=dst):
                    # Bound to 127.0.0.1: a reply sent without regard to the
                    # destination would come from 127.0.0.1.
                    with u.udp_socket(bind=("127.0.0.1", 0)) as s:
                        r, src = u.udp_roundtrip(s, b"where-from", (dst, fw.port))
                        self.assertIsNotNone(r, "no reply")
                        self.assertEqual(src, (dst, fw.port))
                    # A connected socket drops replies from any other source.
                    with u.udp_socket(bind=("127.0.0.1", 0)) as s:
                        s.connect((dst, fw.port))
                        r = None
                        for _ in range(3):
                            s.send(b"connected")
                            try:
                                r = s.recv(100)
                                break
                            except socket.timeout:
                                pass
                        self.assertEqual(r, b"connected",
                                         "connected client got no reply")

    def test_replies_in_flight_together_each_from_its_address(self):
        # Many clients write to four addresses of a wildcard listener at
        # once: replies of several flows leave in one batch, each still
        # from the address its client wrote to.
        dsts = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
        with u.UdpEcho() as echo, \
                UdpForward(echo.port, listen_host="0.0.0.0") as fw:
            socks = [u.udp_socket(bind=("127.0.0.1", 0)) for _ in range(40)]
            try:
                for r in range(5):
                    for i, s in enumerate(socks):
                        s.sendto(b"c%02d r%d" % (i, r), (dsts[i % 4], fw.port))
                    for i, s in enumerate(socks):
                        try:
                            data, src = s.recvfrom(100)
                        except socket.timeout:
                            self.fail(f"client {i} got no reply in round {r}")
                        self.assertEqual(data, b"c%02d r%d" % (i, r))
                        self.assertEqual(src, (dsts[i % 4], fw.port))
            finally:
                for s in socks:
                    s.close()

    def test_ipv6_listener_ipv4_backend(self):
        if not u.have_ipv6():
            self.skipTest("no IPv6 on loopback")
        with u.UdpEcho() as echo, UdpForward(echo.port, listen_host="::1") as fw, \
                u.udp_socket(socket.AF_INET6) as s:
            for size in (0, 5, 1400, 9000):
                data = os.urandom(size)
                r, src = u.udp_roundtrip(s, data, ("::1", fw.port))
                self.assertEqual(r, data, f"{size} bytes")
                self.assertEqual(src[:2], ("::1", fw.port))


class IdleTimeout(unittest.TestCase):
    TIMEOUT = 2          # --udp-timeout
    STEP = 0.4           # refresh interval, well inside TIMEOUT
    REFRESH_FOR = 4.5    # > 2 * TIMEOUT

    def test_idle_expiry_and_refresh(self):
        with u.UdpEcho(prefer_c=False) as echo, \
                UdpForward(echo.port, ["--udp-timeout", str(self.TIMEOUT)]) as fw, \
                u.udp_socket(bind=("127.0.0.1", 0)) as s:
            dst = ("127.0.0.1", fw.port)
            base = fw.stable_fds()
            r, _ = u.udp_roundtrip(s, b"first", dst)
            self.assertEqual(r, b"first")
            self.assertTrue(u.poll_until(lambda: fw.berth.fds() > base, 5),
                            "a flow should hold at least one fd")
            with_flow = fw.berth.fds()
            flow_src = echo.sources[-1]

            # Client -> backend traffic keeps the flow.
            end = time.monotonic() + self.REFRESH_FOR
            while time.monotonic() < end:
                time.sleep(self.STEP)
                r, _ = u.udp_roundtrip(s, b"keep", dst)
                self.assertEqual(r, b"keep")
            self.assertEqual(set(echo.sources), {flow_src},
                             "flow was replaced although refreshed by the client")

            # Backend -> client traffic alone keeps the flow too.
            end = time.monotonic() + self.REFRESH_FOR
            n = 0
            while time.monotonic() < end:
                time.sleep(self.STEP)
                echo.sock.sendto(b"push-%d" % n, flow_src)
                try:
                    data, src = s.recvfrom(100)
                except socket.timeout:
                    self.fail(f"backend push {n} did not reach the client "
                              f"(flow expired while the backend was sending?)")
                self.assertEqual((data, src), (b"push-%d" % n, dst))
                n += 1
            self.assertEqual(fw.berth.fds(), with_flow)
            r, _ = u.udp_roundtrip(s, b"still", dst)
            self.assertEqual(r, b"still")
            self.assertEqual(set(echo.sources), {flow_src},
                             "flow was replaced although refreshed by the backend")

            # Idle: the flow goes away.
            t0 = time.monotonic()
            gone = u.poll_until(lambda: fw.berth.fds() <= base, self.TIMEOUT * 5 + 5, 0.1)
            self.assertTrue(gone, f"flow not expired: berth holds {fw.berth.fds()} fds, "
                                  f"{base} without flows")
            print(f"\n  flow expired {time.monotonic() - t0:.1f}s after the last "
                  f"datagram (--udp-timeout {self.TIMEOUT})", file=sys.stderr)
            # A backend datagram to the expired flow no longer reaches the client.
            echo.sock.sendto(b"late", flow_src)
            s.settimeout(1.0)
            with self.assertRaises(socket.timeout, msg="expired flow still delivered"):
                s.recvfrom(100)
            # A new datagram makes a new flow that works.
            r, _ = u.udp_roundtrip(s, b"again", dst)
            self.assertEqual(r, b"again")
            self.assertTrue(fw.berth.alive())


if __name__ == "__main__":
    u.main()
