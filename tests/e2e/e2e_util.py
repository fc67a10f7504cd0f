"""Shared fixtures for berth's end-to-end tests (Python 3.11 stdlib only).

Every helper here talks to loopback only, bounds its loops in count and
time, and cleans up what it starts: processes run in their own process
group and are killed by group; backend threads stop on close().

Environment:
  BERTH     path of the berth binary (default: <repo>/build/berth)
  UDP_ECHO  path of tests/udp_echo built by CMake (optional; Python echo
            servers are used when it is missing)
  BERTH_E2E_VERBOSE=1  print berth's stderr of every run
"""

import contextlib
import hashlib
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _default(path_env, *candidates):
    value = os.environ.get(path_env)
    if value:
        return value
    for c in candidates:
        if os.path.exists(c):
            return c
    return candidates[0]


BERTH = _default("BERTH", os.path.join(REPO, "build", "berth"))
UDP_ECHO = _default("UDP_ECHO", os.path.join(REPO, "build", "tests", "e2e", "udp_echo"))
VERBOSE = os.environ.get("BERTH_E2E_VERBOSE") == "1"

# Generous: the machines are shared, small and noisy, and berth may be an
# ASan build.
READY_TIMEOUT = 15.0
IO_TIMEOUT = 20.0


def raise_fd_limit():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def require_berth():
    """Skip when no berth was built and none was named; fail when the one
    named in $BERTH (as ctest does) is missing."""
    if os.access(BERTH, os.X_OK):
        return
    if os.environ.get("BERTH"):
        raise RuntimeError(f"BERTH={BERTH} is not an executable")
    raise unittest.SkipTest(f"berth binary not found at {BERTH} (set BERTH=)")


def poll_until(pred, timeout, interval=0.05, what="condition"):
    """Call pred() until it returns a truthy value or timeout passes.

    Returns the truthy value, or the last (falsy) value on timeout."""
    end = time.monotonic() + timeout
    value = pred()
    while not value and time.monotonic() < end:
        time.sleep(interval)
        value = pred()
    return value


def have_ipv6():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# ports

_rng = random.Random(os.getpid() ^ int(time.time() * 1000))


def _port_free(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for typ in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(fam, typ)
        try:
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_ports(count=1, hosts=("0.0.0.0",)):
    """count consecutive ports free for TCP and UDP on every host in hosts.

    Picked at random below the ephemeral range so an outgoing connection of
    another test cannot take the port between our check and berth's bind.
    Binding 0.0.0.0 also proves 127.x and :: (dual-stack bind fails when
    an IPv4 socket holds the port) are free."""
    hosts = list(hosts)
    if have_ipv6() and "::" not in hosts:
        hosts.append("::")
    for _ in range(2000):
        base = _rng.randrange(12000, 32000 - count)
        if all(_port_free(h, p) for p in range(base, base + count) for h in hosts):
            return base
    raise RuntimeError("no free port range found")


def free_port(hosts=("0.0.0.0",)):
    return free_ports(1, hosts)


# --------------------------------------------------------------------------
# /proc inspection

_TCP_LISTEN = "0A"
_UDP_UNCONNECTED = "07"


def _proc_net_entries(proto):
    out = []
    for fam in ("", "6"):
        try:
            with open(f"/proc/net/{proto}{fam}") as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, remote, state, inode = parts[1], parts[2], parts[3], parts[9]
                    lport = int(local.rsplit(":", 1)[1], 16)
                    rport = int(remote.rsplit(":", 1)[1], 16)
                    out.append((lport, rport, state, int(inode), local))
        except FileNotFoundError:
            pass
    return out


def listening_inodes(proto, port):
    """Inodes of sockets listening (TCP) or bound unconnected (UDP) on port."""
    res = set()
    for lport, rport, state, inode, _ in _proc_net_entries(proto):
        if lport != port:
            continue
        if proto == "tcp" and state == _TCP_LISTEN:
            res.add(inode)
        if proto == "udp" and rport == 0 and state == _UDP_UNCONNECTED:
            res.add(inode)
    return res


def port_in_use(proto, port):
    return bool(listening_inodes(proto, port))


def socket_inodes(pid):
    res = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                res.add(int(link[8:-1]))
    except FileNotFoundError:
        pass
    return res


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


# --------------------------------------------------------------------------
# processes

class BerthFixture:
    """A berth (self.berth) used as a context manager: stopped on exit."""

    def close(self):
        self.berth.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Proc:
    """A child process in its own process group, stderr captured to a file."""

    def __init__(self, argv, stdin=subprocess.DEVNULL, stdout=None, stderr=None,
                 env=None, preexec_fn=None, close_fds=True):
        self.argv = [str(a) for a in argv]
        self._err = tempfile.TemporaryFile() if stderr is None else None
        self._out = tempfile.TemporaryFile() if stdout is None else None
        self.proc = subprocess.Popen(
            self.argv, stdin=stdin,
            stdout=self._out if stdout is None else stdout,
            stderr=self._err if stderr is None else stderr,
            env=env, start_new_session=True,
            preexec_fn=preexec_fn, close_fds=close_fds)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def send_signal(self, sig):
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signal, wait, then SIGKILL the whole group. Returns the exit code
        seen after sig (None when it had to be killed)."""
        rc = self.proc.poll()
        if rc is None:
            self.send_signal(sig)
            rc = self.wait(timeout)
        self.kill_group()
        return rc

    def kill_group(self):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.wait(5)

    # The child shares these files' offset (they are not O_APPEND), so they
    # are read with pread: a seek() here could make the child's next line
    # land over the start of its own log.
    @staticmethod
    def _read_all(f):
        fd = f.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")

    def stderr(self):
        if self._err is None:
            return "(stderr not captured)"
        return self._read_all(self._err)

    def log_tail(self, n=30):
        """The last n lines of stderr, headed by whether it still runs:
        what a failing assertion shows."""
        lines = self.stderr().splitlines()
        dead = "" if self.proc.poll() is None else \
            f"--- process is not running (exit code {self.proc.returncode})\n"
        return dead + f"--- log, last {min(n, len(lines))} of {len(lines)} lines:\n" + \
            "\n".join(lines[-n:])

    def stdout(self):
        if self._out is None:
            return ""
        return self._read_all(self._out)

    def close(self):
        self.kill_group()
        for f in (self.proc.stdout, self.proc.stdin):
            if f is not None:
                f.close()
        if VERBOSE:
            sys.stderr.write(f"--- stderr of {' '.join(self.argv)}:\n{self.stderr()}\n")
        if self._err:
            self._err.close()
        if self._out:
            self._out.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Berth(Proc):
    """berth in native mode. docker=False adds --no-docker so a test never
    touches a Docker engine that may run on the machine."""

    def __init__(self, args, docker=False, **kw):
        extra = [] if docker else ["--no-docker"]
        super().__init__([BERTH] + extra + list(args), **kw)

    def wait_bound(self, binds, timeout=READY_TIMEOUT):
        """binds: iterable of (proto, port). Waits until this process holds a
        listening/bound socket on each; fails the test with berth's stderr if
        it exits or times out."""
        binds = list(binds)

        def ready():
            if not self.alive():
                return True
            mine = socket_inodes(self.pid)
            return all(listening_inodes(p, port) & mine for p, port in binds)

        poll_until(ready, timeout, 0.02)
        if not self.alive():
            raise AssertionError(
                f"berth exited early with {self.proc.returncode}; stderr:\n{self.stderr()}")
        mine = socket_inodes(self.pid)
        missing = [(p, port) for p, port in binds if not listening_inodes(p, port) & mine]
        if missing:
            raise AssertionError(f"berth did not bind {missing} within {timeout}s; "
                                 f"stderr:\n{self.stderr()}")

    def fds(self):
        return fd_count(self.pid)


def run_berth(args, timeout=30, strace_binds=False, no_docker=True):
    """Run berth to completion. Returns (rc, stdout, stderr, inet_binds).

    inet_binds is None unless strace_binds and strace works; then berth is
    run a second time under strace to list its bind() calls on AF_INET and
    AF_INET6 sockets. (Two runs: LeakSanitizer cannot work under ptrace, so
    the traced run has leak checking off and the untraced run keeps it.)"""
    argv = [BERTH] + (["--no-docker"] if no_docker else []) + [str(a) for a in args]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout, start_new_session=True)
    binds = None
    if strace_binds and have_strace():
        with tempfile.TemporaryDirectory(prefix="berth-strace-") as d:
            out = os.path.join(d, "trace")
            env = dict(os.environ)
            env["ASAN_OPTIONS"] = ":".join(
                filter(None, [env.get("ASAN_OPTIONS"), "detect_leaks=0"]))
            subprocess.run(["strace", "-f", "-qq", "-e", "trace=bind", "-o", out] + argv,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, start_new_session=True, env=env)
            with open(out) as f:
                binds = [l.strip() for l in f if "bind(" in l and "AF_INET" in l]
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"), binds)


_strace = None


def have_strace():
    global _strace
    if _strace is None:
        try:
            r = subprocess.run(["strace", "-qq", "-e", "trace=none", "true"],
                               capture_output=True, timeout=20)
            _strace = r.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _strace = False
    return _strace


# --------------------------------------------------------------------------
# data

class Pattern:
    """Deterministic, non-repeating-looking byte stream, generated fast:
    slices of one random buffer at a changing offset, so every 1 MiB chunk
    differs and a duplicated/dropped/reordered chunk changes the hash."""

    CHUNK = 1 << 20
    _SPAN = 65521  # prime

    def __init__(self, seed):
        r = random.Random(seed)
        self.buf = memoryview(r.randbytes(self.CHUNK + self._SPAN))

    def chunks(self, total):
        i = 0
        left = total
        while left > 0:
            off = (i * 7919) % self._SPAN
            n = min(self.CHUNK, left)
            yield self.buf[off:off + n]
            left -= n
            i += 1


def send_pattern(sock, total, seed):
    """sendall total bytes of Pattern(seed); returns sha256 hexdigest."""
    h = hashlib.sha256()
    for c in Pattern(seed).chunks(total):
        sock.sendall(c)
        h.update(c)
    return h.hexdigest()


def recv_hash(sock, limit=None):
    """Read to EOF; returns (bytes, sha256 hexdigest)."""
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    mv = memoryview(buf)
    total = 0
    while True:
        n = sock.recv_into(buf)
        if n == 0:
            break
        h.update(mv[:n])
        total += n
        if limit is not None and total > limit:
            break
    return total, h.hexdigest()


def recv_exact(sock, n):
    out = bytearray()
    while len(out) < n:
        b = sock.recv(n - len(out))
        if not b:
            break
        out += b
    return bytes(out)


def recv_all(sock, limit=1 << 24):
    out = bytearray()
    while len(out) < limit:
        b = sock.recv(65536)
        if not b:
            break
        out += b
    return bytes(out)


# --------------------------------------------------------------------------
# TCP backends

def tcp_listener(host="127.0.0.1", port=0, backlog=1024):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(backlog)
    return s


class ThreadServer:
    """Accepts connections in a thread and runs handler(conn, server) in a
    new thread per connection. Records errors raised by handlers."""

    def __init__(self, handler, host="127.0.0.1", port=0):
        self.sock = tcp_listener(host, port)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.accepted = 0
        self.peers = []
        self.errors = []
        self.results = []
        self._stop = threading.Event()
        self._threads = []
        self._conns = []
        self._lock = threading.Lock()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                c, addr = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            c.settimeout(IO_TIMEOUT)
            with self._lock:
                self.accepted += 1
                self.peers.append(addr)
                self._conns.append(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, c):
        try:
            r = self.handler(c, self)
            with self._lock:
                self.results.append(r)
        except Exception as e:  # reported by the test
            with self._lock:
                self.errors.append(e)
        finally:
            with contextlib.suppress(OSError):
                c.close()

    def join_handlers(self, timeout=IO_TIMEOUT):
        end = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(max(0, end - time.monotonic()))

    def close(self):
        self._stop.set()
        self._t.join(5)
        self.sock.close()
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class EchoServer:
    """selectors-based TCP echo server for many connections in one thread.

    greet: bytes sent once on accept (lets a test see which backend it
    reached). close_after_echo: close the connection once the first chunk
    read has been echoed (the server closes first, so TIME_WAIT lands on the
    server side and clients use up no ephemeral ports)."""

    def __init__(self, host="127.0.0.1", port=0, greet=None, close_after_echo=False):
        self.sock = tcp_listener(host, port, backlog=4096)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.greet = greet
        self.close_after_echo = close_after_echo
        self.accepted = 0
        self.open = 0
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ, "listen")
        self._r, self._w = socket.socketpair()
        self.sel.register(self._r, selectors.EVENT_READ, "wake")
        self._out = {}
        self._closing = set()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _close(self, c):
        self._out.pop(c, None)
        self._closing.discard(c)
        with contextlib.suppress(Exception):
            self.sel.unregister(c)
        c.close()
        self.open -= 1

    def _accept(self):
        for _ in range(256):
            try:
                c, _a = self.sock.accept()
            except OSError:
                return
            c.setblocking(False)
            self.accepted += 1
            self.open += 1
            self._out[c] = bytearray(self.greet or b"")
            self._update(c)

    def _update(self, c):
        """Flush what can be flushed; choose the events to wait for."""
        out = self._out[c]
        if out:
            try:
                n = c.send(out)
                del out[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._close(c)
                return
        if not out and c in self._closing:
            self._close(c)
            return
        ev = selectors.EVENT_WRITE if out else selectors.EVENT_READ
        try:
            self.sel.modify(c, ev, "conn")
        except KeyError:
            self.sel.register(c, ev, "conn")

    def _run(self):
        while True:
            for key, ev in self.sel.select(0.5):
                if key.data == "wake":
                    return
                if key.data == "listen":
                    self._accept()
                    continue
                c = key.fileobj
                if ev & selectors.EVENT_READ:
                    try:
                        data = c.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        self._close(c)
                        continue
                    if not data:
                        self._close(c)
                        continue
                    self._out[c] += data
                    if self.close_after_echo:
                        self._closing.add(c)
                self._update(c)

    def close(self):
        with contextlib.suppress(OSError):
            self._w.send(b"x")
        self._t.join(5)
        for key in list(self.sel.get_map().values()):
            with contextlib.suppress(OSError):
                key.fileobj.close()
        self.sel.close()
        self._w.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------
# UDP backends

class UdpEcho:
    """UDP echo backend: tests/udp_echo when built, else a Python thread.
    .port, .close(). The Python one (prefer_c=False, or any tag/port given)
    records datagram sources in .sources and prefixes replies with tag."""

    def __init__(self, host="127.0.0.1", prefer_c=True, tag=b"", port=0):
        self.host = host
        self.proc = None
        self.sources = []
        self.tag = tag
        if prefer_c and not tag and not port and os.access(UDP_ECHO, os.X_OK):
            self.proc = Proc([UDP_ECHO, "-b", host, "0"], stdout=subprocess.PIPE)
            line = self.proc.proc.stdout.readline()
            if not line:
                raise RuntimeError("udp_echo did not start: " + self.proc.stderr())
            self.port = int(line)
            return
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                d, a = self.sock.recvfrom(70000)
            except socket.timeout:
                continue
            except OSError:
                return
            self.sources.append(a)
            with contextlib.suppress(OSError):
                self.sock.sendto(self.tag + d, a)

    def close(self):
        if self.proc:
            self.proc.close()
            return
        self._stop.set()
        self._t.join(5)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def udp_socket(family=socket.AF_INET, bind=None, timeout=5.0):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    if bind is not None:
        s.bind(bind)
    s.settimeout(timeout)
    return s


def udp_roundtrip(sock, data, addr, attempts=3, timeout=3.0):
    """Send data to addr and wait for the identical echo; retries (UDP may be
    dropped on a loaded machine). Returns (reply, from_addr) or (None, None)."""
    sock.settimeout(timeout)
    for _ in range(attempts):
        sock.sendto(data, addr)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                r, a = sock.recvfrom(70000)
            except socket.timeout:
                break
            if r == data:
                return r, a
    return None, None


def tcp_roundtrip(addr, msg=b"ping", timeout=IO_TIMEOUT, family=None, extra=0):
    """Connect, send msg, read len(msg) + extra bytes back (extra: the
    greeting of an EchoServer(greet=...)). Returns the bytes."""
    fam = family or (socket.AF_INET6 if ":" in addr[0] else socket.AF_INET)
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(addr)
        s.sendall(msg)
        return recv_exact(s, len(msg) + extra)


def main():
    unittest.main(verbosity=2)


def main_or_skip(requirements, cleaned):
    """The __main__ of a suite that needs daemons or tools: exit 77 (ctest's
    skip) saying why when requirements() raises SkipTest, else run it; on
    Ctrl-C say that `cleaned` was cleaned up (the fixtures' finally blocks
    ran) and exit 1."""
    try:
        requirements()
    except unittest.SkipTest as e:
        print(f"SKIP: {e}")
        sys.exit(77)
    try:
        main()
    except KeyboardInterrupt as e:
        sys.stderr.write(f"interrupted ({e}); {cleaned} cleaned up\n")
        sys.exit(1)
