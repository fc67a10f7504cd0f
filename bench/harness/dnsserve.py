"""dnsserve: DNS servers answering Docker names locally, side by side.

A private dockerd (tests/e2e/dockerd.py: own socket, bridge and subnet, a
local busybox image) runs 3 replicas of a Compose-like service (labels
com.docker.compose.project=lab, .service=api, .container-number=1..3) on
the user network lab_default with the network alias `api`. Then, every
round, dnsperf -c 4 -T 1 -q 400 -t 2 -l D against each server in turn:

  berth       berth --dns 127.0.0.1:P --upstream 127.0.0.1:<dnsmasq backend>
              --docker unix://<private socket> --log-level warn, asked
              api.lab.docker (3 A records, answered locally, not forwarded)
  dnsmasq     the harness's dnsmasq backend, asked a.bench.test (its own
              --address=/bench.test/192.0.2.10)
  docker-dns  Docker's embedded DNS, 127.0.0.11 inside replica 1's network
              namespace (nsenter -t PID -n dnsperf ...), asked `api`

and once more against berth with -Q at 90% of that round's peak, for the
loss at a rate it should sustain.

The server under test is moved alone onto the forwarder CPU for its run
(every thread of dnsmasq and dockerd, with sched_setaffinity, put back
after; berth is started there), dnsperf runs on the load CPU, as for the
forwarders. Server CPU per query is utime+stime of the server process from
/proc/<pid>/stat (dockerd for Docker's DNS: its resolver runs in dockerd).

Run as a script, `dnsserve.py ask SERVER PORT NAME` prints the rcode and
the A records of one UDP query (used through nsenter in a container).
"""
import os
import shutil
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "e2e")
# the DNS codec the tests use (tests/e2e/dnsmsg.py) and their private
# dockerd (dockerd.py), after the harness's own modules; set at import, as
# this file also runs alone (`ask`, below)
if E2E not in sys.path:
    sys.path.append(E2E)

import dnsmsg                    # noqa: E402
import procs                     # noqa: E402
import traffic                   # noqa: E402
from catalog import DNS_ROWS     # noqa: E402
from procs import Usage, log, run, spawn, stop, wait_ports   # noqa: E402

PROJECT, SERVICE, NETWORK, REPLICAS = "lab", "api", "lab_default", 3
SERVERS = ["berth", "dnsmasq", "docker-dns"]
TITLES = {"berth": "berth", "dnsmasq": "dnsmasq", "docker-dns": "Docker DNS"}
QUERY = {"berth": "%s.%s.docker" % (SERVICE, PROJECT),
         "dnsmasq": "a.bench.test", "docker-dns": SERVICE}
CLIENTS, OUTSTANDING, TIMEOUT_S = 4, 400, 2
RATE_FRACTION = 0.9
SETTLE_S = 15.0


# ---------------------------------------------------------------- one query

def ask_in_netns(pid, server, port, name):
    """dnsmsg.ask_addrs() run by a Python started inside the network
    namespace of pid."""
    rc, out, err = run(["nsenter", "-t", str(pid), "-n", sys.executable,
                        os.path.abspath(__file__), "ask", server, str(port),
                        name], timeout=20)
    parts = out.split()
    if rc != 0 or not parts or parts[0] == "None":
        return None, []
    return int(parts[0]), sorted(parts[1:])


# ---------------------------------------------------------------- /proc

def _cpu_s(pid):
    """utime+stime of one process (all its threads), in seconds."""
    f = procs._stat_fields(pid)        # pylint: disable=protected-access
    return (int(f[11]) + int(f[12])) / procs.CLK_TCK


def _pin(pid, cpus):
    """Every thread of pid onto cpus; returns the affinity it had."""
    old = os.sched_getaffinity(pid)
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            pass                         # a thread that just exited
    return old


# ---------------------------------------------------------------- dnsperf

def dnsperf(server, port, qfile, duration, pid, rate=None, netns=None):
    """dnsperf against server; pid is the server process (for its CPU)."""
    argv = ["dnsperf", "-s", server, "-p", str(port), "-d", qfile,
            "-l", str(duration), "-c", str(CLIENTS), "-T", "1",
            "-q", str(OUTSTANDING), "-t", str(TIMEOUT_S)]
    if rate:
        argv += ["-Q", str(int(rate))]
    if netns:
        argv = ["nsenter", "-t", str(netns), "-n"] + argv
    use = Usage(None)
    t0, c0 = time.time(), _cpu_s(pid)
    rc, out, err = run(argv, timeout=duration + 30)
    res = use.done({"value": None})
    try:
        res["fwd_cpu_s"] = round(_cpu_s(pid) - c0, 3)   # the server's CPU
        res["fwd_cpu_pct"] = round(100.0 * res["fwd_cpu_s"] /
                                   (time.time() - t0), 1)
    except OSError:
        res["error"] = "the server process %d is gone" % pid
        return res
    return traffic.dnsperf_result(res, rc, out, err)


# ---------------------------------------------------------------- the metric

def _missing(run_obj, berth):
    if berth is None:
        return "needs berth (select it with --only, and it must build)"
    for tool in ("dnsperf", "nsenter"):
        if not shutil.which(tool):
            return "%s not installed" % tool
    if "dnsmasq" not in run_obj.be.procs:
        return "the dnsmasq backend is not running"
    return None


def run_metric(r):
    """Entry point from main: fills r.runs['dnsserve'][server]."""
    berth = next((f for f in r.fwds if f.name == "berth"), None)
    why = _missing(r, berth)
    dk = None
    if not why:
        try:
            import dockerd as dk          # tests/e2e/dockerd.py
            dk.require()
        except unittest.SkipTest as e:
            why = "private dockerd unavailable: %s" % e
        except ImportError as e:
            why = "cannot import tests/e2e/dockerd.py: %s" % e
    if why:
        r.skipped["dnsserve (metric)"] = why
        log("SKIPPING metric dnsserve: %s" % why)
        return
    log("dnsserve: starting a private dockerd and %d replicas" % REPLICAS)
    t0 = time.time()
    try:
        with dk.PrivateDockerd() as d:
            s = Session(r, d, berth.binary)
            try:
                s.setup()
                log("dnsserve: ready in %.1f s" % (time.time() - t0))
                s.rounds()
            finally:
                s.close()
    except dk.DockerError as e:
        r.error("dnsserve: private dockerd: %s" % str(e)[-600:])
    log("dnsserve: done in %.0f s (dockerd and containers removed)"
        % (time.time() - t0))


class Session:
    def __init__(self, r, d, binary):
        self.r, self.a, self.d, self.binary = r, r.a, d, binary
        self.berth = None
        self.port = None
        self.ips = []
        self.files = {}
        self.netns = None
        self.bad = {}               # server -> why it is not measured

    # ------------------------------------------------------------ set-up

    def setup(self):
        d = self.d
        d.docker("network", "create", NETWORK)
        names = ["%s_%s_%d" % (PROJECT, SERVICE, n)
                 for n in range(1, REPLICAS + 1)]
        for n, name in enumerate(names, 1):
            d.run(name, args=[
                "--network", NETWORK, "--network-alias", SERVICE,
                "--label", "com.docker.compose.project=%s" % PROJECT,
                "--label", "com.docker.compose.service=%s" % SERVICE,
                "--label", "com.docker.compose.container-number=%d" % n,
                "--label", "com.docker.compose.oneoff=False"])
        self.ips = sorted(d.ip(name, NETWORK) for name in names)
        self.netns = d.inspect(names[0])["State"]["Pid"]
        for s in SERVERS:
            self.files[s] = os.path.join(self.r.dir, "dnsserve-%s.txt" % s)
            with open(self.files[s], "w") as fh:
                fh.write("%s A\n" % QUERY[s])
        self.start_berth()
        ask = dnsmsg.ask_addrs
        want = {"berth": (lambda: ask("127.0.0.1", self.port, QUERY["berth"]),
                          self.ips),
                "dnsmasq": (lambda: ask("127.0.0.1", self.r.be.dns_port,
                                        QUERY["dnsmasq"]), ["192.0.2.10"]),
                "docker-dns": (lambda: ask_in_netns(
                    self.netns, "127.0.0.11", 53, QUERY["docker-dns"]),
                    self.ips)}
        for s, (query, addrs) in want.items():
            deadline = time.time() + SETTLE_S
            got = query()
            while got != (0, addrs) and time.time() < deadline:
                time.sleep(0.1)
                got = query()
            if got != (0, addrs):
                self.bad[s] = "%s: %s answered %s, want NOERROR %s" % (
                    s, QUERY[s], got, addrs)
                self.r.error("dnsserve: " + self.bad[s])
        log("dnsserve: %s -> %s; berth on 127.0.0.1:%d; Docker DNS in the "
            "namespace of pid %d; dockerd pid %d" % (
                QUERY["berth"], " ".join(self.ips), self.port, self.netns,
                self.d.proc.pid))

    def start_berth(self):
        self.port = procs.free_block(self.a.port_base + 60, 1)
        argv = [self.binary, "--dns", "127.0.0.1:%d" % self.port,
                "--upstream", "127.0.0.1:%d" % self.r.be.dns_port,
                "--docker", self.d.url, "--log-level", "warn"]
        err = open(os.path.join(self.r.dir, "berth-dnsserve.err"), "a")
        self.berth = spawn(argv, role="fwd", stderr=err)
        err.close()
        wait_ports(udp=[self.port], procs=[self.berth])

    def close(self):
        if self.berth is not None:
            stop(self.berth)
            self.berth = None

    # ------------------------------------------------------------ runs

    def server(self, s):
        """(address, port, server pid, netns pid or None)."""
        if s == "berth":
            return "127.0.0.1", self.port, self.berth.pid, None
        if s == "dnsmasq":
            return "127.0.0.1", self.r.be.dns_port, \
                self.r.be.procs["dnsmasq"].pid, None
        return "127.0.0.11", 53, self.d.proc.pid, self.netns

    def one(self, s, rate=None):
        if s == "berth" and self.berth.poll() is not None:
            self.r.error("dnsserve: berth had exited (rc %s); restarting"
                         % self.berth.returncode)
            stop(self.berth)
            self.start_berth()
            time.sleep(1.0)
        addr, port, pid, netns = self.server(s)
        old = None
        if s != "berth" and procs.CPU_FWD:
            old = _pin(pid, procs.CPU_FWD)
        try:
            res = dnsperf(addr, port, self.files[s], self.a.duration, pid,
                          rate=rate, netns=netns)
        finally:
            if old is not None:
                _pin(pid, old)
        res["query"] = QUERY[s]
        return res

    def rounds(self):
        n = self.a.rounds
        runs = self.r.runs.setdefault("dnsserve", {})
        for rnd in range(1, n + 1):
            for s in SERVERS:
                log("round %d/%d  %-9s %-13s ..." % (rnd, n, "dnsserve", s))
                if s in self.bad:
                    res = {"value": None, "error": self.bad[s]}
                else:
                    res = self.one(s)
                res["round"] = rnd
                runs.setdefault(s, []).append(res)   # kept if interrupted
                if s == "berth" and res.get("value"):
                    self.at_rate(res, rnd)
                self.r.log_result("dnsserve", s, res, rnd)

    def at_rate(self, peak, rnd):
        """berth again with dnsperf -Q at RATE_FRACTION of its peak."""
        rate = int(RATE_FRACTION * peak["value"])
        log("round %d/%d  %-9s %-13s -Q %d ..." % (rnd, self.a.rounds,
                                                   "dnsserve", "berth", rate))
        q = self.one("berth", rate=rate)
        peak["rate90"] = rate
        peak["at_rate"] = {k: q.get(k) for k in (
            "value", "sent", "completed", "lost", "loss_pct", "error",
            "fwd_cpu_pct", "load_cpu_pct")}
        if q.get("value") is None:
            self.r.error("round %d: dnsserve berth at %d q/s: %s"
                         % (rnd, rate, q.get("error", "failed")))
            return
        peak["qps90"] = q["value"]
        peak["loss90_pct"] = q["loss_pct"]
        log("   -> dnsserve berth -Q %d: %.6g q/s  loss %.3f%% (%d of %d)"
            % (rate, q["value"], q["loss_pct"], q["lost"], q["sent"]))


# ---------------------------------------------------------------- report

def summarise(runs):
    """DNS_ROWS -> {key: {server: median/min/max/n, berth_over}}."""
    rows = {}
    for key, metric, field, _label, _unit, _better, _fmt in DNS_ROWS:
        per = {}
        for s in SERVERS:
            vals = [x[field] for x in runs.get(metric, {}).get(s, [])
                    if x.get("value") is not None and x.get(field) is not None]
            if vals:
                vals.sort()
                mid = len(vals) // 2
                med = vals[mid] if len(vals) % 2 else \
                    (vals[mid - 1] + vals[mid]) / 2.0
                per[s] = {"median": med, "min": vals[0], "max": vals[-1],
                          "n": len(vals)}
        b = per.get("berth", {}).get("median")
        for st in per.values():
            st["berth_over"] = b / st["median"] if b is not None and \
                st["median"] else None
        if per:
            rows[key] = per
    return rows


def markdown(doc):
    rows = doc["summary"]
    if not any(k in rows for k in (r[0] for r in DNS_ROWS)):
        return []
    c = doc["config"]
    out = ["", "## DNS servers answering Docker names (`dnsserve`)", "",
           "dnsperf `-c %d -T 1 -q %d -t %d -l %d` against each server in "
           "turn, the server alone on the forwarder CPU, dnsperf on the load "
           "CPU. berth: `%s` (%d replicas from a private dockerd, answered "
           "locally); dnsmasq: `%s` (its own `--address`); Docker DNS: `%s` "
           "at 127.0.0.11 from a replica's network namespace (`nsenter`), "
           "served by dockerd. Then berth with `-Q` at %d%% of its peak of "
           "that round. Cells: median (min – max, n rounds); the last "
           "columns divide berth's median by the other's." % (
               CLIENTS, OUTSTANDING, TIMEOUT_S, c["duration"], QUERY["berth"],
               REPLICAS, QUERY["dnsmasq"], QUERY["docker-dns"],
               round(100 * RATE_FRACTION)), "",
           "| figure | unit | " + " | ".join(TITLES[s] for s in SERVERS) +
           " | berth ÷ dnsmasq | berth ÷ Docker DNS |",
           "|---|---|" + "---|" * (len(SERVERS) + 2)]
    for key, _m, _f, label, unit, better, fmt in DNS_ROWS:
        if key not in rows:
            continue
        cells = []
        for s in SERVERS:
            st = rows[key].get(s)
            if not st:
                cells.append("–")
                continue
            cell = fmt.format(st["median"])
            if st["n"] > 1:
                cell += " (%s – %s, n=%d)" % (fmt.format(st["min"]),
                                              fmt.format(st["max"]), st["n"])
            cells.append(cell)
        for s in ("dnsmasq", "docker-dns"):
            r = rows[key].get(s, {}).get("berth_over")
            # ratios of rates and of CPU per query; not of % figures
            cells.append("–" if r is None or better is None or unit == "%"
                         else "%.2f×" % r)
        arrow = {"high": " ↑", "low": " ↓"}.get(better, "")
        out.append("| %s%s | %s | %s |" % (label, arrow, unit,
                                           " | ".join(cells)))
    return out


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "ask":
        rcode, found = dnsmsg.ask_addrs(sys.argv[2], int(sys.argv[3]),
                                        sys.argv[4])
        print(rcode, " ".join(found))
    else:
        sys.exit("usage: dnsserve.py ask SERVER PORT NAME")
