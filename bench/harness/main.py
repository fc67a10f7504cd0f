#!/usr/bin/python3
"""berth benchmark harness: see bench/README.md. Started by bench/run."""
import argparse
import os
import resource
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import charts          # noqa: E402
import dnsserve        # noqa: E402
import facts           # noqa: E402
import forwarders      # noqa: E402
import memory          # noqa: E402
import probe           # noqa: E402
import procs           # noqa: E402
import report          # noqa: E402
import syscalls        # noqa: E402
import traffic         # noqa: E402
from backends import Backends   # noqa: E402
from catalog import METRICS, NOT_QUICK     # noqa: E402
from procs import log           # noqa: E402

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 round, 2 s runs, 200 ports, 2000 idle")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--duration", type=int, help="seconds per traffic run")
    ap.add_argument("--only", help="comma list of forwarders (%s)" %
                    ",".join(forwarders.ALL + forwarders.OPTIONAL))
    ap.add_argument("--skip", help="comma list of forwarders to leave out")
    ap.add_argument("--metrics", help="comma list of %s (aliases: tput, "
                    "memory, traffic)" % ",".join(METRICS))
    ap.add_argument("--ports", type=int, help="published ports for 'ports'")
    ap.add_argument("--idle", type=int, help="connections for 'idle'")
    ap.add_argument("--conns", type=int, default=50,
                    help="wrk connections (default 50)")
    ap.add_argument("--berth", default=os.environ.get("BERTH_BIN"),
                    help="berth binary (default build-bench/berth)")
    ap.add_argument("--no-pin", action="store_true", help="no CPU pinning")
    ap.add_argument("--port-base", type=int, default=24000)
    ap.add_argument("--out", default=os.path.join(BENCH, "results"))
    ap.add_argument("--keep-workdir", action="store_true")
    ap.add_argument("--ops", type=int, help="operations per forwarder and "
                    "kind for 'syscalls' (default 2000, --quick 200)")
    ap.add_argument("--syscall-tool", choices=("auto", "perf", "strace"),
                    default="auto", help="how 'syscalls' counts (default: "
                    "perf when it works here, else strace)")
    a = ap.parse_args(argv)
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.duration = a.duration or (2 if a.quick else 5)
    a.ports = a.ports or (200 if a.quick else 1000)
    a.idle = a.idle or (2000 if a.quick else 10000)
    a.ops = a.ops or (200 if a.quick else 2000)
    if a.ports > 4000 or a.port_base + 200 + a.ports > 32768:
        ap.error("--ports/--port-base would reach the ephemeral port range")
    if not a.berth:
        a.berth = os.path.join(os.path.dirname(BENCH), "build-bench", "berth")
    names = a.only.split(",") if a.only else list(forwarders.ALL)
    skip = set(a.skip.split(",")) if a.skip else set()
    a.forwarders = [n.strip() for n in names if n.strip() not in skip]
    for n in a.forwarders:
        if n not in forwarders.ALL + forwarders.OPTIONAL:
            ap.error("unknown forwarder %r" % n)
    a.metric_list = report.metric_list(a.metrics)
    if a.quick and not a.metrics:
        a.metric_list = [m for m in a.metric_list if m not in NOT_QUICK]
    return a


def front_ports(args, name):
    idx = (forwarders.ALL + forwarders.OPTIONAL).index(name)
    base = args.port_base + 100 + 10 * idx
    return {"http": base, "iperf": base + 1, "dns": base + 2}


def traffic_maps(fwd, ports, be, want_udp):
    maps = [("tcp", ports["http"], be.http_port),
            ("tcp", ports["iperf"], be.iperf_port)]
    if want_udp and fwd.udp:
        maps.append(("udp", ports["dns"], be.dns_port))
    return maps


def pick_base(a):
    """--port-base, or the next multiple of 250 above it whose fixed ports
    (base .. base+199) are all free."""
    names = forwarders.ALL + forwarders.OPTIONAL
    for base in range(a.port_base, 32768 - 200 - a.ports, 250):
        fixed = [base + i for i in (0, 1, 2, 50, 51)]
        fixed += [base + 100 + 10 * k + j for k in range(len(names))
                  for j in range(3)]
        if all(procs.port_free(p) for p in fixed):
            if base != a.port_base:
                log("ports near %d are in use: using --port-base %d"
                    % (a.port_base, base))
            return base
    raise SystemExit("no free port range found below 32768")


class Run:
    def __init__(self, args, workdir):
        self.a = args
        self.dir = workdir
        self.be = Backends(workdir, args.port_base)
        self.fwds, self.skipped, self.errors = [], {}, []
        self.runs = {m: {} for m in args.metric_list}
        self.body = None
        self.syscall_tool = None      # set by syscalls.run_metric

    def error(self, msg):
        log("ERROR " + msg)
        self.errors.append(msg)

    def setup(self):
        for name in self.a.forwarders:
            f = forwarders.make(name, self.dir, self.a.berth)
            ok, why = f.available()
            if ok:
                self.fwds.append(f)
            else:
                self.skipped[name] = why
                log("SKIPPING %s: %s" % (name, why))
        busy = [p for p in self.fixed_ports() if not procs.port_free(p)]
        if busy:
            raise SystemExit("ports already in use: %s (use --port-base)" % busy)
        self.be.start()
        with open(os.path.join(self.dir, "www", "small.html"), "rb") as fh:
            self.body = fh.read()

    def fixed_ports(self):
        ports = list(self.be.ports().values()) + [self.a.port_base + 50,
                                                  self.a.port_base + 51]
        for f in self.fwds:
            ports += list(front_ports(self.a, f.name).values())
        return ports

    def ports_of(self, f):
        if f.direct:
            return {"http": self.be.http_port, "iperf": self.be.iperf_port,
                    "dns": self.be.dns_port}
        return front_ports(self.a, f.name)

    def start_fwd(self, f, rnd):
        want_udp = "udp" in self.a.metric_list
        ports = self.ports_of(f)
        try:
            f.start(traffic_maps(f, ports, self.be, want_udp))
        except Exception as e:       # noqa: BLE001 - report and go on
            self.error("round %d: %s failed to start: %s" % (rnd, f.name, e))
            f.stop()
            return False
        bad = probe.http(ports["http"], self.body)
        if bad is None and want_udp and f.udp:
            bad = probe.dns(ports["dns"])
        if bad:
            self.error("round %d: %s: %s" % (rnd, f.name, bad))
        return True

    def measure(self, metric, f, rnd):
        a, ports = self.a, self.ports_of(f)
        if metric == "udp" and not f.udp:
            return None
        if not f.direct and not f.alive():
            self.error("round %d: %s had exited before %s (rc %s); restarting"
                       % (rnd, f.name, metric,
                          [p.poll() for p in f.procs]))
            f.stop()
            if not self.start_fwd(f, rnd):
                return {"value": None, "error": "forwarder would not start"}
        kw = dict(duration=a.duration, conns=a.conns, fwd=None if f.direct else f,
                  backends=self.be, query_file=self.be.query_file)
        if metric == "conn":
            res = traffic.conn(ports["http"], **kw)
        elif metric == "keepalive":
            res = traffic.keepalive(ports["http"], **kw)
        elif metric in ("tput1", "tput4"):
            res = traffic.tput(ports["iperf"], streams=int(metric[-1]), **kw)
        else:
            res = traffic.udp(ports["dns"], **kw)
        if not f.direct and not f.alive():
            res["error"] = "forwarder exited during the run"
            res["value"] = None
        return res

    def traffic_rounds(self):
        metrics = [m for m in self.a.metric_list if METRICS[m][1] == "traffic"]
        if not metrics:
            return
        n = self.a.rounds
        for rnd in range(1, n + 1):
            started = [f for f in self.fwds if self.start_fwd(f, rnd)]
            for metric in metrics:
                for f in started:
                    log("round %d/%d  %-9s %-13s ..." % (rnd, n, metric, f.name))
                    res = self.measure(metric, f, rnd)
                    if res is None:
                        continue
                    res["round"] = rnd
                    self.runs[metric].setdefault(f.name, []).append(res)
                    self.log_result(metric, f.name, res, rnd)
            for f in started:
                self.stopped(f.stop(), rnd)

    def stopped(self, complaint, rnd):
        if complaint:
            self.error("round %d: %s" % (rnd, complaint))

    def log_result(self, metric, name, res, rnd):
        if res.get("value") is None:
            self.error("round %d: %s %s: %s" % (rnd, metric, name,
                                                res.get("error", "failed")))
            return
        extra = ""
        if "p99_ms" in res:
            extra = "  p50 %.3f ms  p99 %.3f ms" % (res.get("p50_ms", 0),
                                                     res["p99_ms"])
        if "cpu_s_per_gb" in res:
            extra = "  %.3f CPU s/GB" % res["cpu_s_per_gb"]
        if "loss_pct" in res:
            extra = "  loss %.2f%%" % res["loss_pct"]
        if "cpu_us_per_req" in res:
            extra += "  %.1f CPU us/op" % res["cpu_us_per_req"]
        if "cpu_busy_pct" in res:
            extra += "  busy%%: %s" % " ".join(
                "cpu%s=%.0f" % kv for kv in sorted(res["cpu_busy_pct"].items()))
        if "fwd_cpu_pct" in res:
            extra += " fwd=%.0f" % res["fwd_cpu_pct"]
        if res.get("socket_errors"):
            extra += "  socket errors %d" % res["socket_errors"]
        log("   -> %s %s: %.6g%s" % (metric, name, res["value"], extra))
        if res.get("error"):
            self.error("%s %s: %s" % (metric, name, res["error"]))
        if res.get("stop_error"):
            self.error("%s: %s" % (metric, res["stop_error"]))

    def memory_metrics(self):
        a = self.a
        for metric in ("ports", "idle"):
            if metric not in a.metric_list:
                continue
            for f in self.fwds:
                if f.direct or (metric == "idle" and not f.idle_ok):
                    continue
                n = a.ports
                if metric == "idle":
                    # what the descriptor limit allows this forwarder to hold
                    cap = (procs.NOFILE - 400) // f.fds_per_conn // 100 * 100
                    n = min(a.idle, cap)
                log("memory    %-9s %-13s N=%d ..." % (metric, f.name, n))
                try:
                    if metric == "ports":
                        # a block of n free ports, looked for just before use
                        # (other programs on this machine bind ports too)
                        first = procs.free_block(a.port_base + 200, n)
                        res = memory.ports(f, n, first, self.be.http_port)
                    else:
                        res = memory.idle(f, n, a.port_base + 50,
                                          a.port_base + 51)
                except Exception as e:   # noqa: BLE001 - report and go on
                    f.stop()
                    res = {"value": None, "error": str(e)}
                res["round"] = 1
                self.runs[metric].setdefault(f.name, []).append(res)
                self.log_result(metric, f.name, res, 1)

    def logs(self):
        out = {}
        for fn in sorted(os.listdir(self.dir)):
            if fn.endswith(".err") and os.path.getsize(os.path.join(self.dir, fn)):
                with open(os.path.join(self.dir, fn), errors="replace") as fh:
                    out[fn] = fh.read()[-4000:]
        return out


def main(argv):
    a = parse_args(argv)
    t0 = time.time()
    a.port_base = pick_base(a)
    started = time.strftime("%Y-%m-%d %H:%M:%S %z")
    stamp = time.strftime("%Y-%m-%d-%H%M%S")
    pinning = procs.configure_cpus(not a.no_pin)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(hard, 262144)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    procs.NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    max_idle = (procs.NOFILE - 400) // 2 // 100 * 100
    if a.idle > max_idle:
        log("descriptor limit %d: a forwarder needs 2 per connection, so the "
            "idle test holds %d connections instead of %d" % (
                procs.NOFILE, max_idle, a.idle))
        a.idle = max_idle
    procs.install_signal_handlers()
    workdir = tempfile.mkdtemp(prefix="berth-bench-")
    os.chmod(workdir, 0o755)       # nginx workers run as www-data
    r = Run(a, workdir)
    log("forwarders: %s; metrics: %s; %d round(s) x %ds; %s; workdir %s" % (
        ",".join(a.forwarders), ",".join(a.metric_list), a.rounds, a.duration,
        pinning, workdir))
    info = facts.collect(a.berth)
    info["pinning"] = pinning
    info["nofile_limit"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    interrupted = False
    try:
        r.setup()
        r.traffic_rounds()
        r.memory_metrics()
        if "syscalls" in a.metric_list:
            syscalls.run_metric(r)
        if "dnsserve" in a.metric_list:
            dnsserve.run_metric(r)
    except KeyboardInterrupt:
        interrupted = True
        r.error("interrupted: partial results")
    finally:
        logs = r.logs()
        procs.kill_all()
        r.be.stop()
        if not a.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    info["loadavg_end"] = facts.loadavg()
    names = [f.name for f in r.fwds]
    summary = report.summarise(r.runs, names)
    doc = {"started": started, "runtime_s": time.time() - t0,
           "config": {"quick": a.quick, "rounds": a.rounds,
                      "duration": a.duration, "ports": a.ports,
                      "idle_connections": a.idle, "wrk_connections": a.conns,
                      "metrics": a.metric_list, "pinning": pinning,
                      "berth": a.berth, "port_base": a.port_base,
                      "syscall_ops": a.ops,
                      "interrupted": interrupted},
           "facts": info, "forwarders": names, "skipped": r.skipped,
           "errors": r.errors, "runs": r.runs, "summary": summary,
           "targets": report.check_targets(summary),
           "syscalls": syscalls.summarise(r.runs, names, r.syscall_tool),
           "logs": logs}
    jpath, mpath, md = report.write(doc, a.out, stamp)
    pngs, how = charts.draw(doc, a.out, stamp)
    log("charts: %d PNG (%s)" % (len(pngs), how))
    sys.stdout.write(md)
    log("wrote %s, %s, %s in %.0f s" % (jpath, mpath,
                                         os.path.join(a.out, "latest.md"),
                                         time.time() - t0))
    if "berth" in r.skipped:
        log("NOTE: berth was skipped: %s" % r.skipped["berth"])
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
