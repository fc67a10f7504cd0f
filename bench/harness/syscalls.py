"""The 'syscalls' metric: system calls and CPU per operation, exact counts.

The deterministic companion of the rate rows. For each forwarder and each
operation kind, harness/opclient.py drives exactly N operations through it
(sequential new connections, new connections 50 at a time, keep-alive
requests on one connection, DNS queries over UDP), each answer checked.
The window: opclient warms up (a few operations, outside the window) and
says READY; the harness enables the counters, tells it to go, waits for its
result, lets the forwarder finish the last close (SETTLE), disables them.

Counting (perf): `perf stat -D -1 --control fifo:... -e
raw_syscalls:sys_enter,task-clock -p <every pid of the forwarder's tree>`.
Counters are inherited, so threads and processes the forwarder creates
during the window (socat's child per connection) are counted too. The same
window length with no traffic, right after, is the idle baseline that is
subtracted; the result is divided by N. CPU per operation is the
utime+stime delta (/proc/<pid>/stat, every process of the tree plus reaped
children: 1/CLK_TCK resolution) minus the baseline's, over N; perf's
task-clock gives the same in ns as a cross-check. For berth and nginx
(BREAKDOWN) `perf record -e raw_syscalls:sys_enter` runs in the same
windows and gives the count per system call (names from asm/unistd_64.h).

Without a working perf, `strace -c -f -p` counts instead (whole-process
attach, so the windows are approximate, and strace slows the forwarder:
no CPU figures are reported then).
"""
import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import probe
from procs import cpu_seconds, descendants, forget, log, spawn

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = [("conn", "new connection (sequential)"),
         ("conn50", "new connection (50 concurrent)"),
         ("keepalive", "keep-alive request"),
         ("udp", "UDP DNS query"),
         ("udp50", "UDP DNS query (50 flows)")]
BREAKDOWN = ("berth", "nginx", "nginx-hc")
CONC = 50
SETTLE = 0.2            # s after the last answer, for the forwarder's closes
UNISTD = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"


def tool_check(want):
    """'perf' when `perf stat -e raw_syscalls:sys_enter true` counts, else
    'strace' when installed; (tool, note)."""
    if want in ("auto", "perf"):
        try:
            p = subprocess.run(["perf", "stat", "-x,", "-e",
                                "raw_syscalls:sys_enter", "true"],
                               capture_output=True, text=True, timeout=30)
            m = re.search(r"^(\d+),[^,]*,raw_syscalls:sys_enter", p.stderr, re.M)
            if p.returncode == 0 and m and int(m.group(1)) > 0:
                return "perf", ""
            why = "perf cannot count raw_syscalls:sys_enter here: %s" % (
                p.stderr.strip().splitlines() or ["rc %d" % p.returncode])[-1]
        except (OSError, subprocess.TimeoutExpired) as e:
            why = "perf unusable: %s" % e
        if want == "perf":
            return None, why
    else:
        why = "strace asked for with --syscall-tool"
    if subprocess.run(["sh", "-c", "command -v strace"],
                      capture_output=True).returncode == 0:
        return "strace", why
    return None, why + "; strace not installed either"


def syscall_names():
    names = {}
    try:
        with open(UNISTD) as fh:
            for line in fh:
                m = re.match(r"#define __NR_(\w+)\s+(\d+)", line)
                if m:
                    names[int(m.group(2))] = m.group(1)
    except OSError:
        pass
    return names


# ------------------------------------------------------------ counters

class _Perf:
    """One perf process attached to pids, events off until enable()."""

    def __init__(self, workdir, tag, pids, record):
        self.dir, self.tag, self.record = workdir, tag, record
        ctl, ack = (os.path.join(workdir, "%s.%s" % (tag, x))
                    for x in ("ctl", "ack"))
        for f in (ctl, ack):
            if os.path.exists(f):
                os.unlink(f)
            os.mkfifo(f)
        # O_RDWR: never blocks, and the ack end never reads EOF
        self.ctl = os.open(ctl, os.O_RDWR | os.O_NONBLOCK)
        self.ack = os.open(ack, os.O_RDWR | os.O_NONBLOCK)
        self.out = os.path.join(workdir, tag + (".data" if record else ".txt"))
        common = ["-D", "-1", "--control", "fifo:%s,%s" % (ctl, ack),
                  "-p", ",".join(map(str, pids))]
        if record:
            argv = ["perf", "record", "-q", "-m", "1024", "-o", self.out,
                    "-e", "raw_syscalls:sys_enter"] + common
        else:
            argv = ["perf", "stat", "-x,", "-o", self.out, "-e",
                    "raw_syscalls:sys_enter,task-clock"] + common
        self.err = open(os.path.join(workdir, tag + ".err"), "w")
        self.p = spawn(argv, role="load", stderr=self.err)

    def command(self, word, timeout=30.0):
        os.write(self.ctl, (word + "\n").encode())
        buf, deadline = b"", time.time() + timeout
        while b"ack" not in buf:
            left = deadline - time.time()
            if left <= 0 or self.p.poll() is not None:
                raise RuntimeError("perf %s: no ack for %r (rc %s; see %s.err)"
                                   % ("record" if self.record else "stat",
                                      word, self.p.poll(), self.tag))
            if select.select([self.ack], [], [], min(left, 0.5))[0]:
                buf += os.read(self.ack, 64)

    def finish(self, names):
        """Stops perf; returns its counts: {'syscalls', 'task_clock_ms'} or,
        for record, {'by_call': {name: n}}."""
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGINT)
        try:
            self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        forget(self.p)
        for fd in (self.ctl, self.ack):
            os.close(fd)
        self.err.close()
        if self.record:
            return {"by_call": self._script(names)}
        got = {}
        with open(self.out) as fh:
            for line in fh:
                parts = line.strip().split(",")
                if len(parts) < 3:
                    continue
                val = parts[0] if parts[0][:1].isdigit() else "0"
                if parts[2] == "raw_syscalls:sys_enter":
                    got["syscalls"] = int(float(val))
                elif parts[2] == "task-clock":
                    got["task_clock_ms"] = float(val)
        if "syscalls" not in got:
            raise RuntimeError("no raw_syscalls:sys_enter count in %s" % self.out)
        return got

    def _script(self, names):
        p = subprocess.run(["perf", "script", "-i", self.out, "-F", "trace"],
                           capture_output=True, text=True, timeout=120)
        counts = {}
        for m in re.finditer(r"^\s*NR (\d+) ", p.stdout, re.M):
            nr = int(m.group(1))
            name = names.get(nr, "NR %d" % nr)
            counts[name] = counts.get(name, 0) + 1
        return counts


class _Strace:
    """strace -c -f on every pid: counting starts once all are attached."""

    def __init__(self, workdir, tag, pids):
        self.out = os.path.join(workdir, tag + ".strace")
        self.errpath = os.path.join(workdir, tag + ".err")
        self.err = open(self.errpath, "w")
        argv = ["strace", "-c", "-f", "-o", self.out]
        for pid in pids:
            argv += ["-p", str(pid)]
        self.p = spawn(argv, role="load", stderr=self.err)
        self.npids = len(pids)

    def command(self, word, timeout=20.0):
        if word != "enable":
            return
        deadline = time.time() + timeout
        while time.time() < deadline and self.p.poll() is None:
            with open(self.errpath) as fh:
                if fh.read().count("attached") >= self.npids:
                    time.sleep(0.2)
                    return
            time.sleep(0.05)
        raise RuntimeError("strace did not attach (rc %s)" % self.p.poll())

    def finish(self, _names):
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGINT)
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        forget(self.p)
        self.err.close()
        by_call, total = {}, 0
        with open(self.out) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 5 or not parts[0][:1].isdigit():
                    continue
                if parts[-1] == "total":
                    total = int(parts[3])
                else:
                    by_call[parts[-1]] = int(parts[3])
        return {"syscalls": total, "by_call": by_call}


class Window:
    """The counters of one measurement window over a forwarder's tree."""

    def __init__(self, tool, workdir, tag, roots, breakdown):
        self.roots = roots
        pids = descendants(roots)
        self.names = syscall_names()
        if tool == "perf":
            self.parts = [_Perf(workdir, tag, pids, record=False)]
            if breakdown:
                self.parts.append(_Perf(workdir, tag + "-rec", pids, record=True))
        else:
            self.parts = [_Strace(workdir, tag, pids)]
        self.t0 = self.t1 = self.c0 = self.c1 = None

    def __enter__(self):
        for p in self.parts:
            p.command("enable")
        self.c0, self.t0 = cpu_seconds(self.roots), time.time()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            for p in self.parts:
                p.command("disable")
        self.t1, self.c1 = time.time(), cpu_seconds(self.roots)
        return False

    def result(self):
        got = {}
        try:
            for p in self.parts:
                got.update(p.finish(self.names))
        finally:
            for p in self.parts:            # a failed one must not linger
                forget(p.p)
        got["window_s"] = self.t1 - self.t0
        got["cpu_s"] = self.c1 - self.c0
        return got


# ------------------------------------------------------------ one run

def _readline(pipe, timeout):
    if not select.select([pipe], [], [], timeout)[0]:
        return ""
    return pipe.readline().decode(errors="replace").strip()


def measure(f, kind, port, n, tool, workdir, body_file):
    """Drive n operations of kind through f: one result dict."""
    breakdown = f.name in BREAKDOWN or tool == "strace"
    cli = spawn([sys.executable, os.path.join(HERE, "opclient.py"), kind,
                 str(port), str(n), body_file, str(CONC)], role="load",
                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    res = {"n": n, "value": None}
    tag = "sys-%s-%s" % (f.name, kind)
    try:
        line = _readline(cli.stdout, 60)
        if line != "READY":
            res["error"] = "client did not get ready: %r" % line[:200]
            return res
        time.sleep(SETTLE)          # warm-up's last closes, socat children
        win = Window(tool, workdir, tag, f.roots(), breakdown)
        try:
            with win:
                cli.stdin.write(b"go\n")
                cli.stdin.flush()
                done = _readline(cli.stdout, 400)
                time.sleep(SETTLE)
        finally:
            busy = win.result()
        cli.stdin.close()
        cli.wait(timeout=10)
        try:
            res.update(json.loads(done))
        except ValueError:
            res["error"] = "no result from the client: %r" % done[:200]
            return res
        time.sleep(SETTLE)
        idle = Window(tool, workdir, tag + "-idle", f.roots(), breakdown)
        try:
            with idle:
                time.sleep(busy["window_s"])
        finally:
            base = idle.result()
    finally:
        forget(cli)
    return _per_op(res, busy, base, n, tool)


def _per_op(res, busy, base, n, tool):
    res.update({"window_s": round(busy["window_s"], 4),
                "baseline_window_s": round(base["window_s"], 4),
                "syscalls": busy["syscalls"],
                "baseline_syscalls": base["syscalls"],
                "syscalls_per_op": (busy["syscalls"] - base["syscalls"]) / n})
    if tool == "perf":
        res.update({"cpu_s": round(busy["cpu_s"], 3),
                    "baseline_cpu_s": round(base["cpu_s"], 3),
                    "cpu_us_per_op": 1e6 * (busy["cpu_s"] - base["cpu_s"]) / n,
                    "task_clock_ms": busy.get("task_clock_ms"),
                    "baseline_task_clock_ms": base.get("task_clock_ms")})
        if busy.get("task_clock_ms") is not None and \
                base.get("task_clock_ms") is not None:
            res["task_clock_us_per_op"] = 1e3 * (
                busy["task_clock_ms"] - base["task_clock_ms"]) / n
    if "by_call" in busy:
        calls = set(busy["by_call"]) | set(base.get("by_call", {}))
        per = {c: (busy["by_call"].get(c, 0) - base.get("by_call", {}).get(c, 0))
               / n for c in calls}
        res["by_call_per_op"] = {c: round(v, 3) for c, v in sorted(
            per.items(), key=lambda kv: -kv[1]) if abs(v) >= 0.0005}
        res["by_call_total"] = sum(busy["by_call"].values())
    if res.get("ok") == n and not res.get("error"):
        res["value"] = res["syscalls_per_op"]
    return res


# ------------------------------------------------------------ the metric

def run_metric(r):
    """Entry point from main: fills r.runs['syscalls'][forwarder] with one
    dict {kind: result} per forwarder."""
    a = r.a
    tool, note = tool_check(a.syscall_tool)
    r.syscall_tool = {"tool": tool, "note": note, "n": a.ops, "conc": CONC}
    if tool is None:
        r.skipped["syscalls"] = note
        log("SKIPPING syscalls: %s" % note)
        return
    if note:
        log("syscalls: counting with strace (%s)" % note)
    body_file = os.path.join(r.dir, "www", "small.html")
    for f in r.fwds:
        if f.direct:
            continue
        ports = r.ports_of(f)
        maps = [("tcp", ports["http"], r.be.http_port)]
        if f.udp:
            maps.append(("udp", ports["dns"], r.be.dns_port))
        try:
            f.start(maps)
        except Exception as e:       # noqa: BLE001 - report and go on
            r.error("syscalls: %s failed to start: %s" % (f.name, e))
            f.stop()
            continue
        bad = probe.http(ports["http"], r.body) or (
            probe.dns(ports["dns"]) if f.udp else None)
        if bad:
            r.error("syscalls: %s: %s" % (f.name, bad))
        out = {}
        for kind, _label in KINDS:
            udp = kind.startswith("udp")
            if udp and not f.udp:
                continue
            port = ports["dns"] if udp else ports["http"]
            log("syscalls  %-9s %-13s N=%d ..." % (kind, f.name, a.ops))
            try:
                res = measure(f, kind, port, a.ops, tool, r.dir, body_file)
            except Exception as e:   # noqa: BLE001 - report and go on
                res = {"value": None, "error": "%s: %s" % (type(e).__name__, e)}
            if not f.alive():
                res["error"] = "forwarder exited during the run"
                res["value"] = None
            out[kind] = res
            _log(r, f.name, kind, res)
            if not f.alive():
                break
        r.runs["syscalls"].setdefault(f.name, []).append(out)
        complaint = f.stop()
        if complaint:
            r.error("syscalls: %s" % complaint)


def _log(r, name, kind, res):
    if res.get("value") is None:
        r.error("syscalls %s %s: %s" % (kind, name, res.get("error", "failed")))
        return
    cpu = ""
    if "cpu_us_per_op" in res:
        cpu = "  %.1f CPU us/op (task-clock %.1f)" % (
            res["cpu_us_per_op"], res.get("task_clock_us_per_op") or 0)
    log("   -> syscalls %s %s: %.2f syscalls/op%s  (%d ops in %.2f s)" % (
        kind, name, res["syscalls_per_op"], cpu, res["ok"], res["elapsed_s"]))


def summarise(runs, forwarders, info):
    """{tool, n, table: {kind: {fwd: {...}}}, breakdown: {kind: {fwd: ...}}}
    for the JSON's "syscalls" key; None when the metric did not run."""
    got = runs.get("syscalls")
    if not got or not info:
        return None
    table, breakdown = {}, {}
    for fwd in forwarders:
        for kind, res in (got.get(fwd) or [{}])[0].items():
            if res.get("value") is None:
                continue
            table.setdefault(kind, {})[fwd] = {
                k: res.get(k) for k in ("syscalls_per_op", "cpu_us_per_op",
                                        "task_clock_us_per_op")
                if res.get(k) is not None}
            if "by_call_per_op" in res:
                breakdown.setdefault(kind, {})[fwd] = res["by_call_per_op"]
    return dict(info, table=table, breakdown=breakdown)


# ------------------------------------------------------------ report

def markdown(doc):
    s = doc.get("syscalls")
    if not s or not s.get("table"):
        return []
    fwds = [f for f in doc["forwarders"]
            if any(f in row for row in s["table"].values())]
    perf = s["tool"] == "perf"
    out = ["", "## System calls and CPU per operation (`syscalls`)", "",
           "Exactly N = %d operations per forwarder and kind, driven by "
           "`harness/opclient.py` (every answer checked): a new connection "
           "is an HTTP/1.0 `GET /small.html` read to EOF, one after another "
           "(or %d in flight); a keep-alive request is one HTTP/1.1 GET on a "
           "single connection; a UDP query is one DNS query, answered before "
           "the next (or one in flight on each of %d sockets: as many flows "
           "through the forwarder). Counted over the forwarder's whole process tree for "
           "exactly the window of the N operations, minus an idle window of "
           "the same length, divided by N." % (s["n"], s["conc"], s["conc"])]
    if perf:
        out.append("Counter: `perf stat -e raw_syscalls:sys_enter,task-clock "
                   "-p <all pids>` (inherited by threads and children "
                   "created during the window). CPU: utime+stime from "
                   "`/proc/<pid>/stat` (resolution 1/CLK_TCK, so ±%.1f µs/op "
                   "here); in brackets perf's task-clock of the same processes, "
                   "a cross-check at ns resolution that can read lower "
                   "(see bench/README.md)." % (
                       1e6 / os.sysconf("SC_CLK_TCK") / s["n"]))
    else:
        out.append("Counter: **strace -c -f -p** (%s). strace slows the "
                   "forwarder, so no CPU figures are given." % s["note"])
    out += ["", "| per operation | " + " | ".join(fwds) + " |",
            "|---|" + "---|" * len(fwds)]
    for kind, label in KINDS:
        row = s["table"].get(kind)
        if not row:
            continue
        out.append("| %s: syscalls ↓ | %s |" % (label, " | ".join(
            "%.2f" % row[f]["syscalls_per_op"] if f in row else "–"
            for f in fwds)))
        if perf:
            out.append("| %s: CPU µs ↓ | %s |" % (label, " | ".join(
                "%.1f (%.1f)" % (row[f]["cpu_us_per_op"],
                                 row[f].get("task_clock_us_per_op", 0))
                if f in row and "cpu_us_per_op" in row[f] else "–"
                for f in fwds)))
    bd = s.get("breakdown", {})
    cols = [(k, f) for k, _l in KINDS for f in BREAKDOWN if f in bd.get(k, {})]
    if cols:
        calls = set()
        for k, f in cols:
            calls |= {c for c, v in bd[k][f].items() if abs(v) >= 0.01}
        first = cols[0]
        order = sorted(calls, key=lambda c: (-bd[first[0]][first[1]].get(c, 0), c))
        how = "`perf record -e raw_syscalls:sys_enter` in the same windows, " \
            "names from asm/unistd_64.h" if perf else "`strace -c -f`"
        out += ["", "Per system call (per operation, idle baseline "
                "subtracted; %s; calls under 0.01/op left out):" % how, "",
                "| call | " + " | ".join("%s %s" % (f, k) for k, f in cols) + " |",
                "|---|" + "---|" * len(cols)]
        for c in order:
            out.append("| %s | %s |" % (c, " | ".join(
                "%.2f" % bd[k][f][c] if c in bd[k][f] else "–" for k, f in cols)))
    return out


def charts(doc, outdir, stamp, plt):
    """Grouped bars per operation kind: syscalls/op and CPU µs/op."""
    s = doc.get("syscalls")
    if not s or not s.get("table"):
        return []
    fwds = [f for f in doc["forwarders"]
            if any(f in row for row in s["table"].values())]
    kinds = [(k, l) for k, l in KINDS if k in s["table"]]
    paths = []
    fields = [("syscalls_per_op", "System calls per operation", "syscalls")]
    if s["tool"] == "perf":
        fields.append(("cpu_us_per_op", "Forwarder CPU per operation "
                       "(µs, /proc utime+stime)",
                       "syscalls_cpu"))
    for field, title, name in fields:
        fig, ax = plt.subplots(figsize=(8, 3.8), dpi=100)
        width = 0.8 / max(1, len(fwds))
        for i, f in enumerate(fwds):
            vals = [s["table"][k].get(f, {}).get(field, 0) for k, _l in kinds]
            ax.bar([j + i * width for j in range(len(kinds))], vals, width,
                   label=f)
        ax.set_xticks([j + width * (len(fwds) - 1) / 2 for j in range(len(kinds))])
        ax.set_xticklabels([l for _k, l in kinds], fontsize=8)
        ax.set_title("%s (N=%d, lower is better)" % (title, s["n"]), fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(outdir, "%s-%s.png" % (stamp, name))
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
