"""Traffic metrics: one measurement of one forwarder, returned as a dict.

Every dict has "value" (the headline number, None when the run failed) and
whatever else was parsed; "error" explains a failure.
"""
import json
import re

from procs import Usage, run

URL = "http://127.0.0.1:%d/small.html"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _wrk(port, duration, conns, close, fwd):
    argv = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % duration, "--latency",
            "--timeout", "5s"]
    if close:
        argv += ["-H", "Connection: close"]
    use = Usage(fwd)
    rc, out, err = run(argv + [URL % port], timeout=duration + 30)
    res = use.done({"value": None})
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    n = re.search(r"(\d+) requests in", out)
    if rc != 0 or not m or not n:
        res["error"] = "wrk rc=%s: %s" % (rc, (err or out).strip()[-300:])
        return res
    res["requests"] = int(n.group(1))
    for pct, num, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$",
                                     out, re.M):
        res["p%s_ms" % pct] = float(num) * _UNITS[unit]
    e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", out)
    res["socket_errors"] = sum(map(int, e.groups())) if e else 0
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = int(bad.group(1)) if bad else 0
    good = res["requests"] - res["non_2xx"]
    # wrk counts a request per completed response; errors are extra info
    res["value"] = float(m.group(1)) * (good / res["requests"]
                                        if res["requests"] else 0)
    if res["requests"] == 0 or res["non_2xx"] > 0.01 * res["requests"]:
        res["error"] = "too many failed requests: %d non-2xx of %d" % (
            res["non_2xx"], res["requests"])
        res["value"] = None
    if "fwd_cpu_s" in res and good > 0:
        res["cpu_us_per_req"] = 1e6 * res["fwd_cpu_s"] / good
    return res


def conn(port, duration, conns=50, fwd=None, **_):
    """New TCP connections per second: HTTP with Connection: close."""
    return _wrk(port, duration, conns, close=True, fwd=fwd)


def keepalive(port, duration, conns=50, fwd=None, **_):
    """Keep-alive requests per second, with p50/p99 latency."""
    return _wrk(port, duration, conns, close=False, fwd=fwd)


def tput(port, duration, streams, fwd=None, backends=None, **_):
    """iperf3 throughput (Gbit/s) and forwarder CPU seconds per GB."""
    argv = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(duration),
            "-P", str(streams), "-J", "--connect-timeout", "3000"]
    use = Usage(fwd)
    rc, out, err = run(argv, timeout=duration + 30)
    res = use.done({"value": None})
    try:
        data = json.loads(out)
    except ValueError:
        data = {"error": "no JSON from iperf3 rc=%s: %s" % (rc, err.strip()[-300:])}
    if rc != 0 or "error" in data:
        res["error"] = "iperf3: %s" % data.get("error", "rc=%s" % rc)
        if backends is not None:
            backends.restart_iperf()
        return res
    recv = data["end"]["sum_received"]
    res["bytes"] = recv["bytes"]
    res["value"] = recv["bits_per_second"] / 1e9
    res["retransmits"] = data["end"].get("sum_sent", {}).get("retransmits")
    if "fwd_cpu_s" in res and res["bytes"]:
        res["cpu_s_per_gb"] = res["fwd_cpu_s"] / (res["bytes"] / 1e9)
    return res


def udp(port, duration, query_file, clients=4, fwd=None, **_):
    """dnsperf through the forwarder: queries/s and loss."""
    argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", query_file,
            "-l", str(duration), "-c", str(clients), "-T", "1", "-t", "1",
            "-q", "200"]
    use = Usage(fwd)
    rc, out, err = run(argv, timeout=duration + 30)
    return dnsperf_result(use.done({"value": None}), rc, out, err)


def dnsperf_result(res, rc, out, err):
    """Fills res from dnsperf's report: queries/s, loss, and CPU per query
    when res holds the server's or forwarder's CPU seconds."""
    got = {}
    for key, pat in (("sent", r"Queries sent:\s+(\d+)"),
                     ("completed", r"Queries completed:\s+(\d+)"),
                     ("lost", r"Queries lost:\s+(\d+)"),
                     ("qps", r"Queries per second:\s+([\d.]+)"),
                     ("noerror", r"NOERROR (\d+)")):
        m = re.search(pat, out)
        if m:
            got[key] = float(m.group(1))
    if rc != 0 or "qps" not in got or not got.get("sent"):
        res["error"] = "dnsperf rc=%s: %s" % (rc, (err or out).strip()[-300:])
        return res
    res.update({"sent": int(got["sent"]), "completed": int(got["completed"]),
                "lost": int(got.get("lost", 0)),
                "noerror": int(got.get("noerror", 0))})
    res["loss_pct"] = 100.0 * res["lost"] / res["sent"]
    res["value"] = got["qps"]
    if "fwd_cpu_s" in res and res["completed"]:
        res["cpu_us_per_req"] = 1e6 * res["fwd_cpu_s"] / res["completed"]
    if res["noerror"] < 0.99 * res["completed"]:
        res["error"] = "answers other than NOERROR: %d of %d" % (
            res["completed"] - res["noerror"], res["completed"])
        res["value"] = None
    return res
