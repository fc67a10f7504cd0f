"""What is measured and how it is reported: metrics, table rows, targets."""

# metric name -> (description, kind); kind 'traffic' runs every round,
# 'memory' runs once (memory use is not noisy the way rates are), 'docker'
# runs its own rounds against a private dockerd (harness/dnsserve.py),
# 'syscalls' runs once with exact operation counts (harness/syscalls.py).
METRICS = {
    "conn": ("new TCP connections/s (wrk, Connection: close)", "traffic"),
    "keepalive": ("keep-alive HTTP requests/s (wrk)", "traffic"),
    "tput1": ("iperf3 throughput, 1 stream", "traffic"),
    "tput4": ("iperf3 throughput, 4 streams", "traffic"),
    "udp": ("DNS over UDP queries/s (dnsperf -> dnsmasq)", "traffic"),
    "ports": ("memory for N published TCP ports", "memory"),
    "idle": ("forwarder memory per idle TCP connection", "memory"),
    "dnsserve": ("DNS servers answering Docker names: berth, dnsmasq, "
                 "Docker's embedded DNS (dnsperf)", "docker"),
    "syscalls": ("forwarder system calls and CPU per operation, exact N "
                 "(perf)", "syscalls"),
}

# left out of --quick unless asked for with --metrics (needs a dockerd)
NOT_QUICK = ["dnsserve"]

# --metrics aliases
ALIASES = {"tput": ["tput1", "tput4"], "throughput": ["tput1", "tput4"],
           "cpu": ["tput1", "tput4"], "memory": ["ports", "idle"],
           "mem": ["ports", "idle"], "traffic": ["conn", "keepalive", "tput1",
                                                  "tput4", "udp"]}

# table rows: (key, metric, field in a run's dict, label, unit, better,
#              number format)
ROWS = [
    ("conn", "conn", "value", "New TCP connections/s", "conn/s", "high", "{:,.0f}"),
    ("keepalive", "keepalive", "value", "Keep-alive requests/s", "req/s", "high", "{:,.0f}"),
    ("keepalive_p50", "keepalive", "p50_ms", "Keep-alive latency p50", "ms", "low", "{:.3f}"),
    ("keepalive_p99", "keepalive", "p99_ms", "Keep-alive latency p99", "ms", "low", "{:.3f}"),
    ("conn_cpu", "conn", "cpu_us_per_req", "Forwarder CPU per new connection", "µs", "low", "{:.1f}"),
    ("keepalive_cpu", "keepalive", "cpu_us_per_req", "Forwarder CPU per keep-alive request", "µs", "low", "{:.1f}"),
    ("tput1", "tput1", "value", "Throughput, 1 stream", "Gbit/s", "high", "{:.2f}"),
    ("tput4", "tput4", "value", "Throughput, 4 streams", "Gbit/s", "high", "{:.2f}"),
    ("cpu1", "tput1", "cpu_s_per_gb", "Forwarder CPU per GB, 1 stream", "CPU s/GB", "low", "{:.3f}"),
    ("cpu4", "tput4", "cpu_s_per_gb", "Forwarder CPU per GB, 4 streams", "CPU s/GB", "low", "{:.3f}"),
    ("udp", "udp", "value", "UDP DNS queries/s", "q/s", "high", "{:,.0f}"),
    ("udp_loss", "udp", "loss_pct", "UDP DNS loss", "%", "low", "{:.2f}"),
    ("udp_cpu", "udp", "cpu_us_per_req", "Forwarder CPU per UDP query", "µs", "low", "{:.1f}"),
    ("ports_rss", "ports", "rss_mb", "RSS for N ports (sum)", "MB", "low", "{:,.1f}"),
    ("ports_pss", "ports", "pss_mb", "PSS for N ports (sum)", "MB", "low", "{:,.1f}"),
    ("ports_procs", "ports", "processes", "Processes for N ports", "", "low", "{:,.0f}"),
    ("ports_start", "ports", "startup_s", "Start-up time for N ports", "s", "low", "{:.2f}"),
    ("idle", "idle", "value", "Memory per idle connection (RSS delta)", "bytes", "low", "{:,.0f}"),
    ("idle_n", "idle", "connections", "Idle connections held for that", "", "high", "{:,.0f}"),
]

# rows of the dnsserve table: one column per DNS server (harness/dnsserve.py)
# instead of per forwarder; better None: informational, no arrow
DNS_ROWS = [
    ("dns_qps", "dnsserve", "value", "Queries/s (peak)", "q/s", "high", "{:,.0f}"),
    ("dns_loss", "dnsserve", "loss_pct", "Loss at peak", "%", "low", "{:.2f}"),
    ("dns_cpu", "dnsserve", "cpu_us_per_req", "Server CPU per query", "µs", "low", "{:.2f}"),
    ("dns_busy", "dnsserve", "fwd_cpu_pct", "Server busy (% of one core)", "%", None, "{:.0f}"),
    ("dns_load", "dnsserve", "load_cpu_pct", "Load CPU busy (dnsperf)", "%", None, "{:.0f}"),
    ("dns_rate90", "dnsserve", "rate90", "Rate asked at 90% of peak (-Q)", "q/s", None, "{:,.0f}"),
    ("dns_qps90", "dnsserve", "qps90", "Queries/s at 90% of peak", "q/s", "high", "{:,.0f}"),
    ("dns_loss90", "dnsserve", "loss90_pct", "Loss at 90% of peak", "%", "low", "{:.3f}"),
]

# targets for berth: (label, kind, args); kinds:
#  ratio: row, other forwarder, minimum of berth/other (higher-is-better row)
#  inverse: row_of_other, row_of_berth, minimum of other/berth
#  below: row, maximum of berth's value
#  atmost: row, maximum of berth's value, itself allowed (e.g. 0% loss)
#  cpu: a CPU-per-operation row, other forwarder, minimum of other/berth
#       (the same target as work done per CPU-second of the forwarder)
TARGETS = [
    ("new conns/s >= 2x docker-proxy", "ratio", ("conn", "docker-proxy", 2.0)),
    ("new conns/s >= 1.2x HAProxy", "ratio", ("conn", "haproxy", 1.2)),
    ("keep-alive req/s >= 1.3x docker-proxy", "ratio", ("keepalive", "docker-proxy", 1.3)),
    ("throughput (1 stream) >= 1.2x docker-proxy", "ratio", ("tput1", "docker-proxy", 1.2)),
    ("throughput (4 streams) >= 1.2x docker-proxy", "ratio", ("tput4", "docker-proxy", 1.2)),
    ("UDP q/s >= 2x docker-proxy", "ratio", ("udp", "docker-proxy", 2.0)),
    ("per forwarder CPU: new conns >= 2x docker-proxy", "cpu", ("conn_cpu", "docker-proxy", 2.0)),
    ("per forwarder CPU: new conns >= 1.2x HAProxy", "cpu", ("conn_cpu", "haproxy", 1.2)),
    ("per forwarder CPU: keep-alive req >= 1.3x docker-proxy", "cpu", ("keepalive_cpu", "docker-proxy", 1.3)),
    ("per forwarder CPU: bytes (1 stream) >= 1.2x docker-proxy", "cpu", ("cpu1", "docker-proxy", 1.2)),
    ("per forwarder CPU: bytes (4 streams) >= 1.2x docker-proxy", "cpu", ("cpu4", "docker-proxy", 1.2)),
    ("per forwarder CPU: UDP queries >= 2x docker-proxy", "cpu", ("udp_cpu", "docker-proxy", 2.0)),
    ("N ports in one berth process < 10 MB RSS", "below", ("ports_rss", 10.0)),
    ("docker-proxy PSS sum >= 75x berth RSS for N ports", "inverse",
     ("ports_pss", "ports_rss", "docker-proxy", 75.0)),
    ("docker-proxy PSS sum >= 75x berth PSS for N ports", "inverse",
     ("ports_pss", "ports_pss", "docker-proxy", 75.0)),
    ("idle connection < 2 KB of berth memory", "below", ("idle", 2048.0)),
    ("Docker names: berth local answers q/s >= 1.5x dnsmasq", "ratio", ("dns_qps", "dnsmasq", 1.5)),
    ("Docker names: berth q/s >= 3x Docker's embedded DNS", "ratio", ("dns_qps", "docker-dns", 3.0)),
    ("Docker names: no loss at 90% of berth's peak rate", "atmost", ("dns_loss90", 0.0)),
    ("per server CPU: Docker names >= 1.5x dnsmasq", "cpu", ("dns_cpu", "dnsmasq", 1.5)),
    ("per server CPU: Docker names >= 3x Docker's embedded DNS", "cpu", ("dns_cpu", "docker-dns", 3.0)),
]
