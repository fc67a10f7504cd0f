"""Machine facts and tool versions, recorded with every report."""
import os
import platform
import re
import subprocess


def _cmd(argv, pattern=None):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = p.stdout.decode(errors="replace")
    if pattern:
        m = re.search(pattern, text)
        return m.group(1) if m else None
    return text.strip().splitlines()[0] if text.strip() else None


def _dpkg(pkg):
    return _cmd(["dpkg-query", "-W", "-f", "${Version}", pkg])


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def collect(berth_bin):
    facts = {"cpus": os.cpu_count(), "kernel": platform.release(),
             "loadavg_start": loadavg(), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            facts["cpu_model"] = m.group(1) if m else None
        with open("/proc/meminfo") as f:
            m = re.search(r"MemTotal:\s*(\d+)", f.read())
            facts["memory"] = "%.1f GiB" % (int(m.group(1)) / 1048576.0)
        with open("/etc/os-release") as f:
            m = re.search(r'PRETTY_NAME="(.*)"', f.read())
            facts["os"] = m.group(1) if m else None
    except OSError:
        pass
    sysctl = {}
    for k in ("net/ipv4/ip_local_port_range", "net/ipv4/tcp_tw_reuse",
              "net/core/somaxconn"):
        try:
            with open("/proc/sys/" + k) as f:
                sysctl[k.replace("/", ".")] = " ".join(f.read().split())
        except OSError:
            pass
    facts["sysctl"] = sysctl
    v = {
        "docker.io (docker-proxy)": _dpkg("docker.io"),
        "haproxy": _cmd(["haproxy", "-v"], r"version (\S+)"),
        "nginx": _cmd(["nginx", "-v"], r"nginx/(\S+)"),
        "socat": _cmd(["socat", "-V"], r"socat version (\S+)"),
        "wrk": _dpkg("wrk"),
        "iperf3": _cmd(["iperf3", "--version"], r"iperf (\S+)"),
        "dnsperf": _cmd(["dnsperf", "-h"], r"Version (\S+)"),
        "dnsmasq": _cmd(["dnsmasq", "--version"], r"version (\S+)"),
    }
    if berth_bin and os.access(berth_bin, os.X_OK):
        v["berth"] = (_cmd([berth_bin, "--version"]) or "").replace("berth ", "")
    facts["versions"] = {k: x for k, x in v.items() if x}
    try:
        rev = subprocess.run(["git", "-C", os.path.dirname(__file__),
                              "describe", "--always", "--dirty"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=10).stdout.decode().strip()
        facts["git"] = rev or "no commits"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return facts
