#!/usr/bin/python3
"""docker-proxy mode: berth run as dockerd runs its userland proxy.

fd 3 is a pipe that gets exactly b"0\\n" when ready, or b"1\\n<error>" and
exit 1; with -use-listen-fd the listening (TCP) or bound (UDP) socket is
fd 4. The same cases run against Debian's /usr/sbin/docker-proxy (20.10,
without -use-listen-fd) to show the bytes and behaviour match."""

import fcntl
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402

DOCKER_PROXY = os.environ.get("DOCKER_PROXY", "/usr/sbin/docker-proxy")


def read_status(fd, timeout=15.0, quiet=0.5):
    """Read the status pipe: everything until EOF, or until `quiet` seconds
    pass without more bytes once at least two arrived. Returns (bytes, eof)."""
    data = b""
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return data, False
        wait = min(quiet, left) if len(data) >= 2 else left
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            if len(data) >= 2:
                return data, False
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return data, True
        data += chunk


class Proxy:
    """One proxy process with the status pipe on fd 3 and optionally a
    socket on fd 4, stdio on /dev/null unless capture_stderr."""

    def __init__(self, impl, args, fd4=None, capture_stderr=True, env=None):
        r, w = os.pipe()
        fds = [w] + ([fd4.fileno()] if fd4 is not None else [])

        def place_fds():
            # Move out of the way first so dup2(a, 3) cannot clobber b.
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in fds]
            for target, fd in zip((3, 4), high):
                os.dup2(fd, target)          # inheritable
            for fd in high:
                os.close(fd)

        try:
            # close_fds=False: Python's own fds are all close-on-exec, so only
            # 0-2 and the dup2'd 3 and 4 reach the child.
            self.proc = u.Proc([impl] + [str(a) for a in args],
                               stdout=subprocess.DEVNULL,
                               stderr=None if capture_stderr else subprocess.DEVNULL,
                               preexec_fn=place_fds, close_fds=False,
                               env=None if env is None else {**os.environ, **env})
        finally:
            os.close(w)
        self.status_fd = r

    def status(self, **kw):
        return read_status(self.status_fd, **kw)

    def close(self):
        self.proc.close()
        os.close(self.status_fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def proxy_args(proto, host_ip, host_port, container_ip, container_port):
    return ["-proto", proto, "-host-ip", host_ip, "-host-port", host_port,
            "-container-ip", container_ip, "-container-port", container_port]


class CompatCases:
    IMPL = None
    LISTEN_FD = True     # supports -use-listen-fd
    # Seconds between '0\n' and a signal. berth must take signals from the
    # moment it reports ready; docker-proxy writes '0\n' before installing
    # its handler, so SIGINT right after it can kill it by default action.
    SIGNAL_SETTLE = 0.0

    def start(self, args, **kw):
        p = Proxy(self.IMPL, args, **kw)
        self.addCleanup(p.close)
        return p

    def stop(self, p, sig=signal.SIGTERM):
        """Stop outside test_signals_exit_0: give the proxy a moment after
        its ready report, so only that test looks at the first instants."""
        time.sleep(max(self.SIGNAL_SETTLE, 0.1))
        return p.proc.stop(sig)

    def assert_ready(self, p):
        data, eof = p.status()
        self.assertEqual(data, b"0\n", f"status pipe; stderr: {p.proc.stderr()}")
        self.assertTrue(p.proc.alive(), p.proc.stderr())
        return eof

    def test_tcp_ready_bytes_and_forwarding(self):
        P = u.free_port()
        with u.EchoServer() as echo:
            p = self.start(proxy_args("tcp", "127.0.0.1", P, "127.0.0.1", echo.port))
            eof = self.assert_ready(p)
            print(f"\n  {os.path.basename(self.IMPL)}: fd 3 "
                  f"{'closed' if eof else 'left open'} after '0\\n'", file=sys.stderr)
            self.assertEqual(u.tcp_roundtrip(("127.0.0.1", P), b"compat"), b"compat")
            self.assertEqual(self.stop(p), 0, p.proc.stderr())

    def test_udp_ready_bytes_and_forwarding(self):
        P = u.free_port()
        with u.UdpEcho() as echo, u.udp_socket() as s:
            p = self.start(proxy_args("udp", "127.0.0.1", P, "127.0.0.1", echo.port))
            self.assert_ready(p)
            r, src = u.udp_roundtrip(s, b"compat-udp", ("127.0.0.1", P))
            self.assertEqual(r, b"compat-udp")
            self.assertEqual(src, ("127.0.0.1", P))
            self.assertEqual(self.stop(p), 0, p.proc.stderr())

    def test_port_in_use_reports_1(self):
        for proto, typ in (("tcp", socket.SOCK_STREAM), ("udp", socket.SOCK_DGRAM)):
            with self.subTest(proto=proto), socket.socket(socket.AF_INET, typ) as hog:
                hog.bind(("127.0.0.1", 0))
                if typ == socket.SOCK_STREAM:
                    hog.listen(1)
                P = hog.getsockname()[1]
                p = self.start(proxy_args(proto, "127.0.0.1", P, "127.0.0.1", 9))
                data, eof = p.status(quiet=2.0)
                self.assertTrue(data.startswith(b"1\n"), f"status {data!r}")
                self.assertGreater(len(data.strip()), 2, "error text after '1\\n'")
                self.assertEqual(p.proc.wait(15), 1, p.proc.stderr())
                print(f"\n  {os.path.basename(self.IMPL)} {proto}: {data!r}", file=sys.stderr)

    def test_signals_exit_0(self):
        """A signal at any time after the ready report is a clean stop. dockerd may stop
        a proxy right after it reported ready; a few tries per case to catch
        a handler installed only after the report."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            for proto in ("tcp", "udp"):
                for attempt in range(4):
                    with self.subTest(sig=sig.name, proto=proto, attempt=attempt):
                        P = u.free_port()
                        p = Proxy(self.IMPL, proxy_args(proto, "127.0.0.1", P, "127.0.0.1", 9))
                        try:
                            data, _ = p.status(quiet=0)
                            self.assertEqual(data, b"0\n", p.proc.stderr())
                            time.sleep(self.SIGNAL_SETTLE)
                            self.assertEqual(p.proc.stop(sig), 0, p.proc.stderr())
                        finally:
                            p.close()
                        self.assertFalse(u.port_in_use(proto, P), "listener closed on exit")

    def test_stdio_dev_null(self):
        P, U = u.free_port(), u.free_port()
        with u.EchoServer() as echo, u.UdpEcho() as uecho, u.udp_socket() as s:
            pt = self.start(proxy_args("tcp", "127.0.0.1", P, "127.0.0.1", echo.port),
                            capture_stderr=False)
            pu = self.start(proxy_args("udp", "127.0.0.1", U, "127.0.0.1", uecho.port),
                            capture_stderr=False)
            self.assert_ready(pt)
            self.assert_ready(pu)
            for i in range(20):   # enough traffic to make it log, if it logs
                self.assertEqual(u.tcp_roundtrip(("127.0.0.1", P), b"n%d" % i), b"n%d" % i)
            r, _ = u.udp_roundtrip(s, b"null", ("127.0.0.1", U))
            self.assertEqual(r, b"null")
            self.assertEqual(self.stop(pt), 0, pt.proc.stderr())
            self.assertEqual(self.stop(pu), 0, pu.proc.stderr())

    def test_ipv6_host_ip_with_ipv4_container(self):
        """dockerd publishes a port on 0.0.0.0 and on :: with two proxies,
        both to the container's IPv4 address. So `-host-ip ::` must work with
        an IPv4 -container-ip, and must bind IPv6 only: the two proxies
        share the port whichever starts first."""
        if not u.have_ipv6():
            self.skipTest("no IPv6 on loopback")
        for order in ("v4-first", "v6-first"):
            with self.subTest(order=order), \
                    u.EchoServer(greet=b"4") as e4, u.EchoServer(greet=b"6") as e6, \
                    u.UdpEcho(tag=b"4", port=u.free_port(("127.0.0.1",))) as ue4, \
                    u.UdpEcho(tag=b"6", port=u.free_port(("127.0.0.1",))) as ue6:
                P, U = u.free_port(), u.free_port()
                specs = {"4": ("0.0.0.0", e4, ue4), "6": ("::", e6, ue6)}
                for fam in ("4", "6") if order == "v4-first" else ("6", "4"):
                    host, tcp_backend, udp_backend = specs[fam]
                    for proto, port, backend in (("tcp", P, tcp_backend),
                                                 ("udp", U, udp_backend)):
                        p = self.start(proxy_args(proto, host, port, "127.0.0.1", backend.port))
                        self.assert_ready(p)
                for host, fam, tag in (("127.0.0.1", socket.AF_INET, b"4"),
                                       ("::1", socket.AF_INET6, b"6")):
                    self.assertEqual(u.tcp_roundtrip((host, P), b"-ds", extra=1), tag + b"-ds", host)
                    with u.udp_socket(fam) as s:
                        s.sendto(b"-ds", (host, U))
                        data, src = s.recvfrom(100)
                        self.assertEqual(data, tag + b"-ds", host)
                        self.assertEqual(src[:2], (host, U))
                self.doCleanups()

    def test_use_listen_fd_tcp(self):
        if not self.LISTEN_FD:
            self.skipTest("no -use-listen-fd in this docker-proxy")
        with u.EchoServer() as echo:
            ls = u.tcp_listener("127.0.0.1", 0)
            P = ls.getsockname()[1]
            try:
                p = self.start(proxy_args("tcp", "127.0.0.1", P, "127.0.0.1", echo.port)
                               + ["-use-listen-fd"], fd4=ls)
            finally:
                ls.close()      # only the proxy holds it now
            self.assert_ready(p)
            for i in range(5):
                self.assertEqual(u.tcp_roundtrip(("127.0.0.1", P), b"fd4-%d" % i), b"fd4-%d" % i)
            mine = u.listening_inodes("tcp", P)
            self.assertEqual(len(mine), 1, "the passed socket is the only listener")
            self.assertTrue(mine & u.socket_inodes(p.proc.pid))
            self.assertEqual(self.stop(p), 0, p.proc.stderr())

    def test_use_listen_fd_udp(self):
        if not self.LISTEN_FD:
            self.skipTest("no -use-listen-fd in this docker-proxy")
        with u.UdpEcho() as echo, u.udp_socket() as s:
            bs = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            bs.bind(("127.0.0.1", 0))
            P = bs.getsockname()[1]
            try:
                p = self.start(proxy_args("udp", "127.0.0.1", P, "127.0.0.1", echo.port)
                               + ["-use-listen-fd"], fd4=bs)
            finally:
                bs.close()
            self.assert_ready(p)
            r, src = u.udp_roundtrip(s, b"fd4-udp", ("127.0.0.1", P))
            self.assertEqual(r, b"fd4-udp")
            self.assertEqual(src, ("127.0.0.1", P))
            bound = u.listening_inodes("udp", P)
            self.assertEqual(len(bound), 1)
            self.assertTrue(bound & u.socket_inodes(p.proc.pid))
            self.assertEqual(self.stop(p), 0, p.proc.stderr())


class BerthCompat(CompatCases, unittest.TestCase):
    IMPL = u.BERTH

    @classmethod
    def setUpClass(cls):
        u.require_berth()

    def test_use_listen_fd_other_protocol(self):
        """A stream socket that is not TCP (here AF_UNIX) on fd 4 is refused
        like a datagram one: relaying it as TCP would be wrong."""
        path = os.path.join(tempfile.mkdtemp(), "s")
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            ls.bind(path)
            ls.listen()
            p = self.start(proxy_args("tcp", "127.0.0.1", u.free_port(), "127.0.0.1", 9)
                           + ["-use-listen-fd"], fd4=ls)
        finally:
            ls.close()
            os.unlink(path)
            os.rmdir(os.path.dirname(path))
        data, _ = p.status()
        self.assertEqual(data, b"1\n-use-listen-fd: fd 4 is not a tcp socket")
        self.assertEqual(p.proc.wait(10), 1)

    def test_sctp_listen_fd_must_be_sctp(self):
        """-proto sctp with a TCP listening socket on fd 4: refused, its
        bytes would be read as messages."""
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            ls.bind(("127.0.0.1", 0))
            ls.listen()
            P = ls.getsockname()[1]
            p = self.start(proxy_args("sctp", "127.0.0.1", P, "127.0.0.1", 9)
                           + ["-use-listen-fd"], fd4=ls)
        finally:
            ls.close()
        data, _ = p.status()
        self.assertEqual(data, b"1\n-use-listen-fd: fd 4 is not a sctp socket")
        self.assertEqual(p.proc.wait(10), 1)

    def test_sctp_without_kernel_support(self):
        """A kernel without SCTP (the host running this suite, usually):
        dockerd reads one line saying so from fd 3, and berth exits 1."""
        try:
            socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
            self.skipTest("this kernel has SCTP: the guest suite (tests/sctp/) covers it")
        except OSError:
            pass
        P = u.free_port()
        p = self.start(proxy_args("sctp", "127.0.0.1", P, "127.0.0.1", 9))
        data, _ = p.status()
        self.assertTrue(data.startswith(
            b"1\nlisten sctp 127.0.0.1:%d: this kernel has no SCTP (" % P), data)
        self.assertNotIn(b"\n", data[2:])
        self.assertEqual(p.proc.wait(10), 1)

    def test_settings_from_environment(self):
        """dockerd's flags are fixed: berth's own settings come from the
        environment dockerd passes on, read as the options they name."""
        with u.EchoServer() as echo:
            P = u.free_port()
            p = self.start(proxy_args("tcp", "127.0.0.1", P, "127.0.0.1", echo.port),
                           env={"BERTH_IDLE_TIMEOUT": "1", "BERTH_TCP_KEEPALIVE": "0"})
            self.assert_ready(p)
            c = socket.create_connection(("127.0.0.1", P), timeout=10)
            try:
                c.sendall(b"x")
                self.assertEqual(u.recv_exact(c, 1), b"x")
                start = time.monotonic()
                c.settimeout(10)
                with self.assertRaises(ConnectionResetError):
                    while c.recv(16):
                        pass
                waited = time.monotonic() - start
                self.assertGreater(waited, 0.8, "reset before the idle timeout")
                self.assertLess(waited, 5, "idle session kept past BERTH_IDLE_TIMEOUT")
            finally:
                c.close()
            self.assertEqual(self.stop(p), 0, p.proc.stderr())

        p = self.start(proxy_args("tcp", "127.0.0.1", u.free_port(), "127.0.0.1", 9),
                       env={"BERTH_TCP_KEEPALIVE": "15:15"})
        data, _ = p.status()
        self.assertRegex(data.decode(), r"^1\nBERTH_TCP_KEEPALIVE: --tcp-keepalive '15:15': ")
        self.assertEqual(p.proc.wait(10), 2)

    def test_version_alone(self):
        """docker-proxy answers -v and -version with its version; so does
        berth in its place."""
        for flag in ("-v", "-version", "--version"):
            with self.subTest(flag=flag):
                r = subprocess.run([u.BERTH, flag], capture_output=True, text=True,
                                   timeout=10)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertRegex(r.stdout, r"^berth \d+\.\d+\.\d+")

    def test_other_signals_do_not_stop(self):
        """dockerd stops its proxies with SIGTERM; any other signal
        (SIGHUP from a service manager, SIGUSR1/2, SIGALRM) leaves the
        port forwarding."""
        with u.EchoServer() as echo:
            P = u.free_port()
            p = self.start(proxy_args("tcp", "127.0.0.1", P, "127.0.0.1", echo.port))
            self.assert_ready(p)
            for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
                p.proc.send_signal(sig)
                self.assertIsNone(p.proc.wait(0.2), f"{sig.name}: {p.proc.stderr()}")
                self.assertEqual(u.tcp_roundtrip(("127.0.0.1", P), b"s"), b"s")
            self.assertEqual(self.stop(p), 0, p.proc.stderr())


class DockerProxyCompat(CompatCases, unittest.TestCase):
    """The incumbent, to show the tests encode what dockerd gets today."""
    IMPL = DOCKER_PROXY
    LISTEN_FD = False
    SIGNAL_SETTLE = 0.2

    @classmethod
    def setUpClass(cls):
        if not os.access(DOCKER_PROXY, os.X_OK):
            raise unittest.SkipTest(f"{DOCKER_PROXY} not installed")


if __name__ == "__main__":
    u.main()
