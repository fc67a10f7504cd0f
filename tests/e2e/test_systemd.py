#!/usr/bin/python3
"""berth under systemd, without systemd: the notification datagrams read from
a NOTIFY_SOCKET the test binds (READY=1 only once every port answers,
WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 on SIGTERM, nothing in
docker-proxy mode), and `cmake --install` of the build under test into a
temporary prefix (the files, the unit's ExecStart, the installed berth
running, the unit passing `systemd-analyze verify`)."""

import json
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


# LISTEN_PID must be berth's own pid: the shell exports its $$ and execs
# berth in its place, as systemd sets it in the child it then execs.
AS_OWN_PID = 'LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"'


class Passed:
    """What systemd would pass: a listening TCP socket and a bound UDP socket
    on free loopback ports (IPv6 wildcard ones with v6=True, IPV6_V6ONLY
    set as BindIPv6Only=ipv6-only does), made by the test, for the child
    as fds 3 and 4."""

    def __init__(self, v6=False, v6only=True):
        fam, host = (socket.AF_INET6, "::") if v6 else (socket.AF_INET, "127.0.0.1")
        self.tcp = socket.socket(fam, socket.SOCK_STREAM)
        self.udp = socket.socket(fam, socket.SOCK_DGRAM)
        for s in (self.tcp, self.udp):
            if v6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
            s.bind((host, 0))
        self.tcp.listen(64)
        self.tcp_port = self.tcp.getsockname()[1]
        self.udp_port = self.udp.getsockname()[1]
        self.host = "[::]" if v6 else "127.0.0.1"
        self.inodes = {os.fstat(s.fileno()).st_ino for s in (self.tcp, self.udp)}

    def preexec(self):
        """In the child: the two sockets as fds 3 and 4, inheritable. Via
        fds above both first, so neither dup2 lands on the other."""
        a, b = os.dup(self.tcp.fileno()), os.dup(self.udp.fileno())
        hi = max(a, b, 10) + 1
        os.dup2(a, hi)
        os.dup2(b, hi + 1)
        os.dup2(hi, 3)
        os.dup2(hi + 1, 4)

    def close(self):
        self.tcp.close()
        self.udp.close()


def activated(passed, args, pid=None, fds="2", names=None, wrap=(), **env_kw):
    """berth (under wrap, e.g. strace) with passed's sockets as fds 3, 4 and
    LISTEN_FDS set; LISTEN_PID berth's own pid, or pid when given."""
    env = env_with(LISTEN_FDS=fds, **env_kw)
    if names is not None:
        env["LISTEN_FDNAMES"] = names
    if pid is not None:
        env["LISTEN_PID"] = str(pid)
        argv = list(wrap) + [u.BERTH, "--no-docker"] + args
    else:
        argv = list(wrap) + ["/bin/sh", "-c", AS_OWN_PID, u.BERTH, "--no-docker"] + args
    return u.Proc(argv, env=env, preexec_fn=passed.preexec, close_fds=False)


class SocketActivation(unittest.TestCase):
    """LISTEN_FDS as systemd passes sockets (sd_listen_fds(3)): each taken
    by the mapping with its address and protocol, none bound by berth."""

    def setUp(self):
        self.passed = Passed()
        self.addCleanup(lambda: self.passed.close())  # the one there is then

    def publish(self, tcp_target, udp_target):
        p = self.passed
        return ["-p", f"{p.host}:{p.tcp_port}:127.0.0.1:{tcp_target}",
                "-p", f"{p.host}:{p.udp_port}:127.0.0.1:{udp_target}/udp"]

    def wait_serving(self, b):
        u.poll_until(lambda: not b.alive() or "forwarding 2 ports" in b.stderr(),
                     u.READY_TIMEOUT, what="berth serving")
        self.assertTrue(b.alive(), b.log_tail())

    def check_traffic_and_sockets(self, b, connect_host="127.0.0.1"):
        p = self.passed
        self.assertEqual(u.tcp_roundtrip((connect_host, p.tcp_port), b"over fd 3"),
                         b"over fd 3", b.log_tail())
        fam = socket.AF_INET6 if ":" in connect_host else socket.AF_INET
        with u.udp_socket(fam) as s:
            self.assertEqual(u.udp_roundtrip(s, b"over fd 4", (connect_host, p.udp_port))[0],
                             b"over fd 4", b.log_tail())
        # berth holds the very sockets the test made, and the only sockets
        # listening on those ports are those.
        self.assertLessEqual(p.inodes, u.socket_inodes(b.pid))
        self.assertEqual(u.listening_inodes("tcp", p.tcp_port) |
                         u.listening_inodes("udp", p.udp_port), p.inodes)

    def test_passed_sockets_are_used(self):
        with u.EchoServer() as e, u.UdpEcho() as ue, \
                activated(self.passed, self.publish(e.port, ue.port),
                          names="web:dns") as b:
            self.wait_serving(b)
            self.assertIn("/tcp: on fd 3, passed by the service manager", b.stderr())
            self.assertIn("/udp: on fd 4, passed by the service manager", b.stderr())
            self.check_traffic_and_sockets(b)
            # The passed fds are close-on-exec now: no child inherits them.
            for fd in (3, 4):
                with open(f"/proc/{b.pid}/fdinfo/{fd}") as f:
                    flags = int(next(l for l in f if l.startswith("flags:")).split()[1], 8)
                self.assertTrue(flags & os.O_CLOEXEC, f"fd {fd} flags {flags:o}")
            self.assertEqual(b.stop(signal.SIGTERM), 0, b.log_tail())

    def test_no_bind_of_its_own(self):
        """strace -e bind: berth binds no AF_INET/AF_INET6 socket at all."""
        if not u.have_strace():
            self.skipTest("strace does not work here")
        with tempfile.TemporaryDirectory(prefix="berth-strace-", dir=ROOT) as d:
            out = os.path.join(d, "trace")
            # LeakSanitizer cannot work under ptrace.
            asan = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                          "detect_leaks=0"]))
            with activated(self.passed, self.publish(9, 9), ASAN_OPTIONS=asan,
                           wrap=["strace", "-f", "-qq", "-e", "trace=bind", "-o", out]) as b:
                self.wait_serving(b)
                os.killpg(b.pid, signal.SIGTERM)  # berth, strace's child, too
                b.wait(10)
                log = b.stderr()
            with open(out) as f:
                trace = f.read()
            binds = [l.strip() for l in trace.splitlines() if "AF_INET" in l]
            # The trace saw berth (its execve is not traced: its log is).
            self.assertIn("forwarding 2 ports", log)
            self.assertEqual(binds, [], log)

    def test_ipv6_wildcard_v6only(self):
        """[::] sockets with IPV6_V6ONLY (BindIPv6Only=ipv6-only) match
        [::]:P mappings; without it, one that takes IPv4 too is refused."""
        if not u.have_ipv6():
            self.skipTest("no IPv6")
        self.passed.close()
        self.passed = Passed(v6=True)
        with u.EchoServer() as e, u.UdpEcho() as ue, \
                activated(self.passed, self.publish(e.port, ue.port)) as b:
            self.wait_serving(b)
            self.check_traffic_and_sockets(b, connect_host="::1")
            self.assertEqual(b.stop(signal.SIGTERM), 0, b.log_tail())
        self.passed.close()
        self.passed = Passed(v6=True, v6only=False)
        with activated(self.passed, self.publish(9, 9)) as b:
            self.assertEqual(b.wait(10), 1, b.log_tail())
            lines = b.stderr().splitlines()
            self.assertEqual(len(lines), 1, lines)
            self.assertIn(f"fd 3 [::]:{self.passed.tcp_port}/tcp", lines[0])
            self.assertIn("IPV6_V6ONLY off", lines[0])

    def test_unmatched_socket_is_an_error(self):
        """A passed socket no mapping listens on: exit 1, one line naming it
        (with its LISTEN_FDNAMES name); nothing bound, nothing served."""
        p = self.passed
        other = u.free_port(hosts=("127.0.0.1",))
        with activated(p, ["-p", f"127.0.0.1:{p.tcp_port}:127.0.0.1:9",
                           "-p", f"127.0.0.1:{other}:127.0.0.1:9/udp"],
                       names="web:stats") as b:
            self.assertEqual(b.wait(10), 1, b.log_tail())
            lines = b.stderr().splitlines()
            self.assertEqual(lines, [f"berth: LISTEN_FDS: fd 4 (stats) 127.0.0.1:"
                                     f"{p.udp_port}/udp matches no mapping (a --publish or "
                                     f"config entry listening on that address with that "
                                     f"protocol)"])
            self.assertFalse(u.port_in_use("udp", other))
        # The same address with the other protocol is no match either.
        with activated(p, ["-p", f"127.0.0.1:{p.tcp_port}:127.0.0.1:9",
                           "-p", f"127.0.0.1:{p.udp_port}:127.0.0.1:9"]) as b:
            self.assertEqual(b.wait(10), 1, b.log_tail())
            lines = b.stderr().splitlines()
            self.assertEqual(len(lines), 1, lines)
            self.assertIn(f"fd 4 127.0.0.1:{p.udp_port}/udp matches no mapping", lines[0])

    def test_bad_count_is_an_error(self):
        with activated(self.passed, self.publish(9, 9), fds="two") as b:
            self.assertEqual(b.wait(10), 1, b.log_tail())
            self.assertEqual(b.stderr().splitlines(),
                             ["berth: LISTEN_FDS=two: not a number of fds up to 4096"])

    def test_other_pid_is_ignored(self):
        """LISTEN_PID of another process (a parent that did not unset it):
        berth binds its ports itself, leaving fds 3 and 4 alone."""
        P, U = u.free_port(hosts=("127.0.0.1",)), u.free_port(hosts=("127.0.0.1",))
        with u.EchoServer() as e, \
                activated(self.passed, ["-p", f"127.0.0.1:{P}:127.0.0.1:{e.port}",
                                        "-p", f"127.0.0.1:{U}:127.0.0.1:9/udp"],
                          pid=os.getpid()) as b:
            self.wait_serving(b)
            self.assertNotIn("passed by the service manager", b.stderr())
            self.assertEqual(u.tcp_roundtrip(("127.0.0.1", P), b"x"), b"x", b.log_tail())
            mine = u.socket_inodes(b.pid)
            self.assertTrue(u.listening_inodes("tcp", P) & mine)
            self.assertTrue(u.listening_inodes("udp", U) & mine)
            self.assertEqual(b.stop(signal.SIGTERM), 0, b.log_tail())

    def test_example_socket_unit(self):
        """examples/berth.socket listens on the example config's addresses
        (TCP entries as ListenStream=), and verifies beside the service."""
        ex = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                          "examples")
        with open(os.path.join(ex, "berth.socket")) as f:
            unit = f.read().splitlines()
        with open(os.path.join(ex, "berth.json")) as f:
            publish = json.load(f)["publish"]
        listens = sorted(l.split("=", 1)[1] for l in unit if l.startswith("ListenStream="))
        self.assertEqual(listens, sorted(p.rsplit(":", 2)[0] for p in publish
                                         if not p.endswith("/udp")))
        self.assertIn("BindIPv6Only=ipv6-only", unit)
        tool = shutil.which("systemd-analyze")
        if not tool:
            self.skipTest("systemd-analyze not installed")
        with tempfile.TemporaryDirectory(prefix="berth-units-", dir=ROOT) as d:
            shutil.copy(os.path.join(ex, "berth.socket"), d)
            with open(os.path.join(ex, "berth.service")) as f:
                service = f.read().replace("ExecStart=/usr/bin/berth",
                                           f"ExecStart={os.path.abspath(u.BERTH)}")
            with open(os.path.join(d, "berth.service"), "w") as f:
                f.write(service)
            r = subprocess.run([tool, "verify", "--man=no", os.path.join(d, "berth.socket"),
                                os.path.join(d, "berth.service")],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual((r.returncode, r.stderr.strip()), (0, ""), r.stdout + r.stderr)


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
