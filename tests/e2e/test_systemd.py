#!/usr/bin/python3
"""berth under systemd, without systemd: the notification datagrams read from
a NOTIFY_SOCKET the test binds (READY=1 only once every port answers,
WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 on SIGTERM, nothing in
docker-proxy mode), and `cmake --install` of the build under test into a
temporary prefix (the files, the unit's ExecStart, the installed berth
running, the unit passing `systemd-analyze verify`)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402
import test_compat as compat  # noqa: E402  (its Proxy: fd 3 status pipe)

ROOT = os.environ.get("BERTH_TEST_ROOT", "/tmp")


def setUpModule():
    u.require_berth()


class Manager:
    """The service manager's end of NOTIFY_SOCKET: a datagram socket bound
    to a path, or to an abstract name (abstract=True; "@name" in the
    variable)."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"berth-e2e-notify-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.env = "@" + name
            self.dir = None
        else:
            self.dir = tempfile.TemporaryDirectory(prefix="berth-notify-", dir=ROOT)
            self.env = os.path.join(self.dir.name, "notify")
            self.sock.bind(self.env)

    def recv(self, timeout):
        """The next datagram as text, or None after timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode()
        except socket.timeout:
            return None

    def wait_for(self, key, timeout, seen=None):
        """Datagrams until one holds the line key (e.g. "READY=1"); each
        one received is appended to seen. The datagram, or None."""
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            msg = self.recv(left)
            if msg is None:
                return None
            if seen is not None:
                seen.append(msg)
            if key in msg.split("\n"):
                return msg
        return None

    def close(self):
        self.sock.close()
        if self.dir:
            self.dir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def env_with(**kw):
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env.update(kw)
    return env


class Notify(unittest.TestCase):
    def test_ready_only_when_every_port_answers(self):
        """READY=1 comes after every listener of the plan (a range of 32
        TCP ports, a UDP port and a DNS address) is bound: at the moment
        it arrives, each of them connects at the first try."""
        P = u.free_ports(32)
        U = u.free_port()
        D = u.free_port()
        up = u.free_port()   # never asked: no query is sent in this test
        with Manager() as m, u.EchoServer() as e, \
                u.Berth(["-p", f"127.0.0.1:{P}-{P + 31}:127.0.0.1:{e.port}-{e.port + 31}",
                         "-p", f"127.0.0.1:{U}:127.0.0.1:9/udp",
                         "--dns", f"127.0.0.1:{D}", "--upstream", f"127.0.0.1:{up}"],
                        env=env_with(NOTIFY_SOCKET=m.env)) as b:
            msg = m.wait_for("READY=1", u.READY_TIMEOUT)
            self.assertIsNotNone(msg, b.log_tail())
            for port in list(range(P, P + 32)) + [D]:
                # Only the first port has an echo behind it: the others
                # accept, then reset when their target refuses. A reset
                # still means a listener took the handshake; a port not
                # bound yet refuses it.
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=2):
                        pass
                except ConnectionResetError:
                    pass
            self.assertTrue(u.port_in_use("udp", U))
            self.assertIn("STATUS=serving 33 ports, DNS on 1 address", msg.split("\n"))
            # And it forwards: READY meant serving.
            self.assertEqual(u.tcp_roundtrip(("127.0.0.1", P), b"hi"), b"hi")
            self.assertEqual(b.stop(signal.SIGTERM), 0, b.log_tail())

    def test_abstract_name(self):
        P = u.free_port()
        with Manager(abstract=True) as m, \
                u.Berth(["-p", f"127.0.0.1:{P}:127.0.0.1:9"],
                        env=env_with(NOTIFY_SOCKET=m.env)) as b:
            msg = m.wait_for("READY=1", u.READY_TIMEOUT)
            self.assertIsNotNone(msg, b.log_tail())
            self.assertIn("STATUS=serving 1 port", msg.split("\n"))

    def test_watchdog_pings(self):
        """WATCHDOG_USEC=200000: a ping every 100 ms, so at least two within
        a second of READY (about ten)."""
        P = u.free_port()
        with Manager() as m, \
                u.Berth(["-p", f"127.0.0.1:{P}:127.0.0.1:9"],
                        env=env_with(NOTIFY_SOCKET=m.env, WATCHDOG_USEC="200000")) as b:
            self.assertIsNotNone(m.wait_for("READY=1", u.READY_TIMEOUT), b.log_tail())
            pings = 0
            end = time.monotonic() + 1.0
            while (left := end - time.monotonic()) > 0:
                msg = m.recv(left)
                if msg is None:
                    break
                pings += msg == "WATCHDOG=1"
            self.assertGreaterEqual(pings, 2, b.log_tail())
            self.assertLessEqual(pings, 15)

    def test_watchdog_of_another_pid_is_not_answered(self):
        """WATCHDOG_PID naming another process (berth's parent, say): the
        variables were not meant for berth, so no pings."""
        P = u.free_port()
        with Manager() as m, \
                u.Berth(["-p", f"127.0.0.1:{P}:127.0.0.1:9"],
                        env=env_with(NOTIFY_SOCKET=m.env, WATCHDOG_USEC="200000",
                                     WATCHDOG_PID=str(os.getpid()))) as b:
            seen = []
            self.assertIsNotNone(m.wait_for("READY=1", u.READY_TIMEOUT, seen), b.log_tail())
            self.assertIsNone(m.wait_for("WATCHDOG=1", 0.6, seen), seen)

    def test_stopping_on_sigterm(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            P = u.free_port()
            with self.subTest(sig=sig.name), Manager() as m, \
                    u.Berth(["-p", f"127.0.0.1:{P}:127.0.0.1:9"],
                            env=env_with(NOTIFY_SOCKET=m.env)) as b:
                self.assertIsNotNone(m.wait_for("READY=1", u.READY_TIMEOUT), b.log_tail())
                self.assertIsNone(m.wait_for("STOPPING=1", 0.3), "STOPPING=1 before a signal")
                b.send_signal(sig)
                self.assertIsNotNone(m.wait_for("STOPPING=1", 10), b.log_tail())
                self.assertEqual(b.wait(10), 0, b.log_tail())

    def test_bad_socket_name_is_said_and_survived(self):
        P = u.free_port()
        with u.Berth(["-p", f"127.0.0.1:{P}:127.0.0.1:9"],
                     env=env_with(NOTIFY_SOCKET="relative/notify")) as b:
            b.wait_bound([("tcp", P)])
            u.poll_until(lambda: "NOTIFY_SOCKET=relative/notify" in b.stderr(), 5,
                         what="the warning")
            self.assertEqual(b.stop(signal.SIGTERM), 0, b.log_tail())

    def test_docker_proxy_mode_stays_silent(self):
        """dockerd (Type=notify itself) hands its NOTIFY_SOCKET down to every
        docker-proxy: berth in that mode must not speak for dockerd."""
        P = u.free_port()
        with Manager() as m, u.EchoServer() as e, \
                compat.Proxy(u.BERTH, compat.proxy_args("tcp", "127.0.0.1", P,
                                                        "127.0.0.1", e.port),
                             env={"NOTIFY_SOCKET": m.env, "WATCHDOG_USEC": "200000"}) as p:
            data, _ = p.status()
            self.assertEqual(data, b"0\n", p.proc.log_tail())
            self.assertEqual(u.tcp_roundtrip(("127.0.0.1", P), b"x"), b"x")
            self.assertIsNone(m.recv(0.5), "docker-proxy mode sent a notification")
            p.proc.send_signal(signal.SIGTERM)
            self.assertEqual(p.proc.wait(10), 0)
            self.assertIsNone(m.recv(0.2), "docker-proxy mode sent a notification")


class Install(unittest.TestCase):
    """cmake --install of the build that made $BERTH (its directory) into a
    temporary prefix, as a packager's DESTDIR would."""

    @classmethod
    def setUpClass(cls):
        cls.build = os.path.dirname(os.path.abspath(u.BERTH))
        if not os.path.exists(os.path.join(cls.build, "CMakeCache.txt")):
            raise unittest.SkipTest(f"{cls.build} is not a CMake build directory")
        cls.cmake = shutil.which("cmake")
        if not cls.cmake:
            raise unittest.SkipTest("cmake not installed")
        cls.tmp = tempfile.TemporaryDirectory(prefix="berth-install-", dir=ROOT)
        cls.prefix = os.path.join(cls.tmp.name, "usr")
        r = subprocess.run([cls.cmake, "--install", cls.build, "--prefix", cls.prefix],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            cls.tmp.cleanup()
            raise AssertionError(f"cmake --install failed:\n{r.stdout}\n{r.stderr}")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, rel):
        return os.path.join(self.prefix, rel)

    def test_files(self):
        for rel, mode in (("bin/berth", 0o755), ("bin/berth-tproxy", 0o755),
                          ("share/man/man1/berth.1", 0o644),
                          ("lib/systemd/system/berth.service", 0o644),
                          ("share/doc/berth/examples/berth.json", 0o644)):
            with self.subTest(rel):
                st = os.stat(self.path(rel))
                self.assertEqual(st.st_mode & 0o777, mode, rel)

    def test_installed_berth_runs(self):
        r = subprocess.run([self.path("bin/berth"), "--version"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^berth \d+\.\d+")
        # The example config it installs is one berth accepts.
        r = subprocess.run([self.path("bin/berth"), "--no-docker", "--check", "--config",
                            self.path("share/doc/berth/examples/berth.json")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_unit_points_at_the_installed_berth(self):
        with open(self.path("lib/systemd/system/berth.service")) as f:
            unit = f.read()
        lines = unit.splitlines()
        self.assertIn(f"ExecStart={self.prefix}/bin/berth --config /etc/berth/berth.json",
                      lines)
        for want in ("Type=notify", "WatchdogSec=30", "Restart=on-failure"):
            self.assertIn(want, lines)

    def test_unit_verifies(self):
        tool = shutil.which("systemd-analyze")
        if not tool:
            self.skipTest("systemd-analyze not installed")
        # --man=no: the man page is in this prefix, not in man's path.
        r = subprocess.run([tool, "verify", "--man=no",
                            self.path("lib/systemd/system/berth.service")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr.strip(), "", r.stderr)


if __name__ == "__main__":
    u.main()
