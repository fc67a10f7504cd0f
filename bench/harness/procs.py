"""Child processes, CPU pinning, clean-up, and /proc readings.

Every process the harness starts goes through spawn(): it gets its own
session (so a whole tree - nginx workers, socat children - can be killed by
process group) and is recorded, so kill_all() can end it on any exit path.
"""
import os
import signal
import socket
import subprocess
import sys
import time

_children = []          # Popen objects still to clean up
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# CPU plan: set by configure_cpus() from main.
CPU_FWD = None          # set of CPUs for forwarders
CPU_LOAD = None         # set of CPUs for load generators and backends
NOFILE = 1024           # descriptor limit children inherit (set by main)


def configure_cpus(pin):
    """Forwarders on the last CPU, load generators + backends on the rest."""
    global CPU_FWD, CPU_LOAD
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        CPU_FWD = CPU_LOAD = None
        return "no pinning"
    CPU_FWD = {cpus[-1]}
    CPU_LOAD = set(cpus[:-1])
    return "forwarder on CPU %s; load generators and backends on CPU %s" % (
        ",".join(map(str, sorted(CPU_FWD))), ",".join(map(str, sorted(CPU_LOAD))))


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def spawn(argv, role="load", stdout=None, stderr=None, fd3=None, env=None,
          cwd=None, stdin=None):
    """Start argv pinned to the CPUs of role ('fwd', 'load' or None).

    fd3: a file descriptor that becomes fd 3 of the child (docker-proxy's
    readiness pipe). Output goes to /dev/null unless files are given.
    """
    cpus = {"fwd": CPU_FWD, "load": CPU_LOAD}.get(role)

    def pre():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        if cpus:
            os.sched_setaffinity(0, cpus)
        if fd3 is not None:
            os.dup2(fd3, 3)          # dup2 clears close-on-exec

    # Ctrl-C between fork and registration would orphan the child: hold
    # the stop signals until it is on the list (the child unblocks them).
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        p = subprocess.Popen(argv, stdin=stdin or subprocess.DEVNULL,
                             stdout=stdout or subprocess.DEVNULL,
                             stderr=stderr or subprocess.DEVNULL,
                             preexec_fn=pre, start_new_session=True,
                             close_fds=(fd3 is None), env=env, cwd=cwd)
        _children.append(p)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return p


def run(argv, role="load", timeout=None, cwd=None):
    """Run argv to completion (pinned); return (rc, stdout, stderr) as text."""
    p = spawn(argv, role=role, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
              cwd=cwd)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(p)
        out, err = p.communicate()
        err = (err or b"") + b"\n[bench: timed out]"
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def stop(p, grace=3.0):
    """SIGTERM the process group of p, SIGKILL it after grace seconds."""
    if p is None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    # the group may outlive its leader (forked socat children)
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if p in _children:
        _children.remove(p)


def forget(p):
    """Stop p if it still runs; else only drop it from the clean-up list
    (signalling a reaped pid could reach an unrelated process)."""
    if p.poll() is None:
        stop(p)
    elif p in _children:
        _children.remove(p)


def stop_many(procs):
    """Stop a list of processes quickly: TERM all, then wait, then KILL.
    Returns how many of them had to be killed (ignored SIGTERM for 5 s)."""
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.time() + 5
    for p in procs:
        try:
            p.wait(timeout=max(0.05, deadline - time.time()))
        except subprocess.TimeoutExpired:
            pass
    stuck = sum(1 for p in procs if p.poll() is None)
    for p in procs:
        stop(p, grace=1.0)
    return stuck


def kill_all():
    stop_many(list(_children))


def install_signal_handlers():
    def handler(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)
    # SIGINT too: a shell without job control starts background jobs with
    # SIGINT ignored, and Python would then never see Ctrl-C / kill -INT
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


# ---------------------------------------------------------------- /proc

def _stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()    # fields from 'state' on


def descendants(pids):
    """The given pids plus all their live descendants (one /proc scan)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(d))[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, queue = [], list(pids)
    while queue:
        p = queue.pop()
        out.append(p)
        queue.extend(kids.get(p, []))
    return out


def cpu_seconds(root_pids):
    """utime+stime of the trees under root_pids (+ reaped children of roots)."""
    total = 0
    roots = set(root_pids)
    for pid in descendants(root_pids):
        try:
            f = _stat_fields(pid)
        except OSError:
            continue
        total += int(f[11]) + int(f[12])          # utime, stime
        if pid in roots:
            total += int(f[13]) + int(f[14])      # cutime, cstime
    return total / CLK_TCK


def memory_kb(root_pids):
    """Summed Rss and Pss (kB) from smaps_rollup over the trees."""
    rss = pss = n = 0
    for pid in descendants(root_pids):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            n += 1
        except OSError:
            continue
    return {"rss_kb": rss, "pss_kb": pss, "processes": n}


def cpu_busy():
    """Per-CPU (busy, total) jiffies from /proc/stat; busy = user, nice,
    system, irq, softirq (not idle, iowait or steal)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                parts = line.split()
                vals = list(map(int, parts[1:]))
                busy = sum(vals[0:3]) + sum(vals[5:7])
                out[int(parts[0][3:])] = (busy, sum(vals[0:8]))
    return out


class Usage:
    """CPU use during a measurement: the forwarder's CPU seconds and how
    busy each CPU was (to see which side was the bottleneck)."""

    def __init__(self, fwd):
        self.roots = fwd.roots() if fwd is not None else []
        self.t0 = time.time()
        self.c0 = cpu_seconds(self.roots) if self.roots else None
        self.b0 = cpu_busy()

    def done(self, res):
        wall = time.time() - self.t0
        b1 = cpu_busy()
        res["cpu_busy_pct"] = {
            str(c): round(100.0 * (b1[c][0] - self.b0[c][0]) /
                          max(1, b1[c][1] - self.b0[c][1]), 1)
            for c in b1 if c in self.b0}
        load = [res["cpu_busy_pct"][str(c)] for c in (CPU_LOAD or ())
                if str(c) in res["cpu_busy_pct"]]
        if load:
            res["load_cpu_pct"] = round(sum(load) / len(load), 1)
        if self.c0 is not None:
            res["fwd_cpu_s"] = round(cpu_seconds(self.roots) - self.c0, 3)
            res["fwd_cpu_pct"] = round(100.0 * res["fwd_cpu_s"] / wall, 1)
        return res


def listening(proto):
    """Set of local ports bound on loopback/any: TCP LISTEN or UDP bound."""
    ports = set()
    files = ("/proc/net/tcp", "/proc/net/tcp6") if proto == "tcp" else \
            ("/proc/net/udp", "/proc/net/udp6")
    want = "0A" if proto == "tcp" else "07"
    for fn in files:
        try:
            with open(fn) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == want:
                        ports.add(int(parts[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


def wait_ports(tcp=(), udp=(), timeout=30.0, procs=()):
    """Wait until all ports are bound; fail early if a process died."""
    tcp, udp = set(tcp), set(udp)
    deadline = time.time() + timeout
    while True:
        missing_t = tcp - listening("tcp") if tcp else set()
        missing_u = udp - listening("udp") if udp else set()
        if not missing_t and not missing_u:
            return
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError("process %s exited with %s before binding"
                                   % (p.args[0], p.returncode))
        if time.time() > deadline:
            raise RuntimeError("ports not bound after %.0fs: tcp %s udp %s" % (
                timeout, sorted(missing_t)[:5], sorted(missing_u)[:5]))
        time.sleep(0.05)


def free_block(start, n, limit=32768):
    """First port p >= start with p .. p+n-1 all free (below limit)."""
    busy = listening("tcp") | listening("udp")
    p = start
    while p + n <= limit:
        clash = [q for q in range(p, p + n) if q in busy]
        if not clash:
            return p
        p = clash[-1] + 1
    raise RuntimeError("no %d consecutive free ports from %d" % (n, start))


def port_free(port):
    """True when nothing listens on 127.0.0.1:port (TCP) nor binds it (UDP)."""
    for typ in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, typ)
        if typ == socket.SOCK_STREAM:     # ignore TIME_WAIT leftovers
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True
