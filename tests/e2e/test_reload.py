#!/usr/bin/python3
"""SIGHUP reloads --config: mappings the same in both plans keep their
sockets and sessions (a stream through one never breaks), new ones answer,
removed ones refuse new clients at once while their established TCP
sessions and UDP flows go on; a config that does not parse, or a new port
that cannot bind, is refused with one error line and changes nothing; a
NOTIFY_SOCKET manager sees RELOADING=1 (with MONOTONIC_USEC) then
READY=1."""

import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402
import test_systemd as sysd  # noqa: E402  (its Manager: the NOTIFY_SOCKET end)

ROOT = os.environ.get("BERTH_TEST_ROOT", "/tmp")


def setUpModule():
    u.require_berth()


class Stream:
    """A client on addr that sends and reads back its own bytes without a
    pause, in a thread, comparing every byte; .error is the first thing
    that went wrong (a reset, a short or wrong echo)."""

    CHUNK = 8192

    def __init__(self, addr):
        self.sock = socket.create_connection(addr, timeout=u.IO_TIMEOUT)
        self.bytes = 0
        self.error = None
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        n = 0
        try:
            while not self._stop.is_set():
                chunk = bytes((n + i) % 251 for i in range(self.CHUNK))
                self.sock.sendall(chunk)
                got = u.recv_exact(self.sock, len(chunk))
                if got != chunk:
                    raise AssertionError(f"echo differs after {self.bytes} bytes")
                n += 1
                self.bytes += len(chunk)
        except Exception as e:  # noqa: BLE001 -- any failure is the finding
            self.error = repr(e)

    def moved_on(self, timeout=5.0):
        """Bytes flow now: the count grows (or an error is set)."""
        start = self.bytes
        u.poll_until(lambda: self.bytes > start or self.error, timeout,
                     what="the stream to move on")

    def stop(self):
        self._stop.set()
        self._t.join(u.IO_TIMEOUT)
        self.sock.close()


class Reload(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="berth-reload-", dir=ROOT)
        self.path = os.path.join(self.dir.name, "berth.json")
        self.echo = u.EchoServer()
        self.addCleanup(self.echo.close)
        self.addCleanup(self.dir.cleanup)

    def write(self, body):
        text = body if isinstance(body, str) else json.dumps(body)
        tmp = self.path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)

    def tcp(self, port):
        return f"127.0.0.1:{port}:127.0.0.1:{self.echo.port}"

    def reload(self, b, line):
        """SIGHUP, then waits for one more log line holding line."""
        before = b.stderr().count(line)
        b.send_signal(signal.SIGHUP)
        u.poll_until(lambda: b.stderr().count(line) > before or not b.alive(),
                     u.READY_TIMEOUT, what=f"'{line}' after SIGHUP")
        self.assertTrue(b.alive(), b.log_tail())

    def test_kept_added_removed(self):
        P = u.free_ports(4)
        A, B, C, D = P, P + 1, P + 2, P + 3
        self.write({"publish": [self.tcp(A), self.tcp(B), self.tcp(C)]})
        with u.Berth(["--config", self.path]) as b:
            b.wait_bound([("tcp", A), ("tcp", B), ("tcp", C)])
            kept = {p: u.listening_inodes("tcp", p) for p in (A, B)}
            stream = Stream(("127.0.0.1", B))
            self.addCleanup(stream.stop)
            on_c = socket.create_connection(("127.0.0.1", C), timeout=u.IO_TIMEOUT)
            on_c.sendall(b"before")
            self.assertEqual(u.recv_exact(on_c, 6), b"before")
            stream.moved_on()

            self.write({"publish": [self.tcp(A), self.tcp(B), self.tcp(D)]})
            self.reload(b, "reload: 2 ports kept, 1 added, 1 removed")
            # D answers; C refuses new clients at once; A and B are the
            # very same sockets.
            self.assertEqual(u.tcp_roundtrip(("127.0.0.1", D), b"d"), b"d")
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", C), timeout=2)
            self.assertEqual(u.tcp_roundtrip(("127.0.0.1", A), b"a"), b"a")
            for p in (A, B):
                self.assertEqual(u.listening_inodes("tcp", p), kept[p])
            # C's established session still works, until its client closes.
            on_c.sendall(b"after")
            self.assertEqual(u.recv_exact(on_c, 5), b"after")
            self.assertIn("removed by the reload: 1 session(s) left", b.stderr())
            on_c.close()
            u.poll_until(lambda: "its last client is gone" in b.stderr(), 5,
                         what="the removed port to close after its session")
            # B's stream never broke: still byte-exact after all of it.
            stream.moved_on()
            self.assertIsNone(stream.error)
            self.assertGreater(stream.bytes, 0)
            stream.stop()
            self.assertIsNone(stream.error, b.log_tail())
            self.assertEqual(b.stop(signal.SIGTERM), 0, b.log_tail())

    def test_udp_flow_finishes(self):
        """A removed UDP port: its flow keeps answering, a new client gets
        nothing, and the socket closes once the flow expired."""
        E = u.free_port()
        udp = u.UdpEcho()
        self.addCleanup(udp.close)
        spec = f"127.0.0.1:{E}:127.0.0.1:{udp.port}/udp"
        self.write({"publish": [spec], "udp-timeout": 2})
        with u.Berth(["--config", self.path]) as b:
            b.wait_bound([("udp", E)])
            old = u.udp_socket()
            self.addCleanup(old.close)
            self.assertEqual(u.udp_roundtrip(old, b"x", ("127.0.0.1", E))[0], b"x")
            self.write({"publish": [], "udp-timeout": 2})
            self.reload(b, "reload: 0 ports kept, 0 added, 1 removed")
            self.assertEqual(u.udp_roundtrip(old, b"y", ("127.0.0.1", E))[0], b"y")
            new = u.udp_socket(timeout=0.5)
            self.addCleanup(new.close)
            new.sendto(b"z", ("127.0.0.1", E))
            with self.assertRaises(socket.timeout):
                new.recvfrom(100)
            u.poll_until(lambda: not u.port_in_use("udp", E), 10,
                         what="the removed UDP port to close after its flow expired")
            self.assertEqual(b.stop(signal.SIGTERM), 0, b.log_tail())

    def test_udp_port_back_while_draining(self):
        """A UDP port removed by one reload, its flow still alive, put back
        by the next: the draining port gives its socket over (its flow
        ends) and the new one serves."""
        E = u.free_port()
        udp = u.UdpEcho()
        self.addCleanup(udp.close)
        spec = f"127.0.0.1:{E}:127.0.0.1:{udp.port}/udp"
        self.write({"publish": [spec]})
        with u.Berth(["--config", self.path]) as b:
            b.wait_bound([("udp", E)])
            old = u.udp_socket()
            self.addCleanup(old.close)
            self.assertEqual(u.udp_roundtrip(old, b"x", ("127.0.0.1", E))[0], b"x")
            self.write({"publish": []})
            self.reload(b, "reload: 0 ports kept, 0 added, 1 removed")
            self.assertEqual(u.udp_roundtrip(old, b"y", ("127.0.0.1", E))[0], b"y")
            self.write({"publish": [spec]})
            self.reload(b, "reload: 0 ports kept, 1 added, 0 removed")
            self.assertNotIn("reload refused", b.stderr(), b.log_tail())
            new = u.udp_socket()
            self.addCleanup(new.close)
            self.assertEqual(u.udp_roundtrip(new, b"z", ("127.0.0.1", E))[0], b"z")
            self.assertEqual(u.udp_roundtrip(old, b"w", ("127.0.0.1", E))[0], b"w")
            self.assertEqual(b.stop(signal.SIGTERM), 0, b.log_tail())

    def test_refused_changes_nothing(self):
        P = u.free_ports(3)
        A, C, E = P, P + 1, P + 2
        self.write({"publish": [self.tcp(A), self.tcp(C)]})
        with u.Berth(["--config", self.path]) as b:
            b.wait_bound([("tcp", A), ("tcp", C)])
            inodes = {p: u.listening_inodes("tcp", p) for p in (A, C)}

            def unchanged():
                for p in (A, C):
                    self.assertEqual(u.tcp_roundtrip(("127.0.0.1", p), b"k"), b"k")
                    self.assertEqual(u.listening_inodes("tcp", p), inodes[p])

            self.write('{"publish": [')
            self.reload(b, "reload refused")
            unchanged()
            errors = [ln for ln in b.stderr().splitlines() if " error: " in ln]
            self.assertEqual(len(errors), 1, b.log_tail())
            self.assertIn(self.path, errors[0])

            # A new port that is taken: nothing of this config applies,
            # neither E (free) nor C's removal.
            taken = u.tcp_listener("127.0.0.1", 0)
            self.addCleanup(taken.close)
            T = taken.getsockname()[1]
            self.write({"publish": [self.tcp(A), self.tcp(E), self.tcp(T)]})
            self.reload(b, "reload refused")
            unchanged()
            self.assertFalse(u.port_in_use("tcp", E))
            errors = [ln for ln in b.stderr().splitlines() if " error: " in ln]
            self.assertEqual(len(errors), 2, b.log_tail())
            self.assertIn(f"127.0.0.1:{T}", errors[1])
            self.assertEqual(b.stop(signal.SIGTERM), 0, b.log_tail())

    def test_notify_reloading_then_ready(self):
        P = u.free_ports(2)
        A, D = P, P + 1
        self.write({"publish": [self.tcp(A)]})
        with sysd.Manager() as m, \
                u.Berth(["--config", self.path],
                        env=sysd.env_with(NOTIFY_SOCKET=m.env)) as b:
            self.assertIsNotNone(m.wait_for("READY=1", u.READY_TIMEOUT), b.log_tail())
            for body, want in (({"publish": [self.tcp(A), self.tcp(D)]},
                                "STATUS=serving 2 ports"),
                               ("not json", "STATUS=serving 2 ports")):
                self.write(body)
                before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
                b.send_signal(signal.SIGHUP)
                seen = []
                msg = m.wait_for("RELOADING=1", u.READY_TIMEOUT, seen)
                self.assertIsNotNone(msg, b.log_tail())
                self.assertEqual(len(seen), 1, seen)
                usec = [ln for ln in msg.split("\n") if ln.startswith("MONOTONIC_USEC=")]
                self.assertEqual(len(usec), 1, msg)
                stamp = int(usec[0].split("=", 1)[1])
                after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
                self.assertTrue(before <= stamp <= after, (before, stamp, after))
                ready = m.wait_for("READY=1", u.READY_TIMEOUT)
                self.assertIsNotNone(ready, b.log_tail())
                self.assertIn(want, ready.split("\n"))
            self.assertEqual(u.tcp_roundtrip(("127.0.0.1", D), b"d"), b"d")
            self.assertEqual(b.stop(signal.SIGTERM), 0, b.log_tail())


if __name__ == "__main__":
    unittest.main()
