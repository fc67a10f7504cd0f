"""Memory metrics: many published ports, and many idle connections.

ports: one forwarder set-up publishing N TCP ports (berth: one process with
N -p; docker-proxy: N processes, as dockerd would run them). RSS and PSS are
summed over every process of the forwarder from /proc/<pid>/smaps_rollup.

idle: the forwarder publishes one port; idle_conns.py (which is also the
backend) opens N connections through it. Reported: the forwarder's RSS
growth divided by N (its own memory; kernel socket buffers are not in RSS).
"""
import os
import socket
import subprocess
import sys
import time

from procs import memory_kb, spawn, stop, wait_ports

HERE = os.path.dirname(os.path.abspath(__file__))


def _probe(port):
    """One HTTP request through port; True if the backend answered 200."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.sendall(b"GET /small.html HTTP/1.0\r\nHost: bench\r\n\r\n")
            data = b""
            while len(data) < 12:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.startswith(b"HTTP/1.1 200") or \
                data.startswith(b"HTTP/1.0 200")
    except OSError:
        return False


def ports(fwd, n, first_port, target_port, **_):
    maps = [("tcp", first_port + i, target_port) for i in range(n)]
    t0 = time.time()
    note = None
    try:
        fwd.start(maps)
        startup = time.time() - t0
        time.sleep(1.0)
        ok = all(_probe(p) for p in (first_port, first_port + n // 2,
                                     first_port + n - 1))
        mem = memory_kb(fwd.roots())
    finally:
        note = fwd.stop()
    res = {"ports": n, "startup_s": round(startup, 2), "probe_ok": ok,
           "rss_kb": mem["rss_kb"], "pss_kb": mem["pss_kb"],
           "processes": mem["processes"], "rss_mb": mem["rss_kb"] / 1024.0,
           "pss_mb": mem["pss_kb"] / 1024.0, "value": mem["rss_kb"] / 1024.0}
    if not ok:
        res["error"] = "a probe request through a published port failed"
    if note:
        res["stop_error"] = note
    return res


def idle(fwd, n, front_port, back_port, **_):
    cli = spawn([sys.executable, os.path.join(HERE, "idle_conns.py"),
                 str(back_port), str(front_port), str(n)], role="load",
                stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    cli_in, cli_out = cli.stdin, cli.stdout
    res = {"value": None, "connections": n}
    try:
        first = cli_out.readline().decode().strip()
        if first != "LISTENING":
            raise RuntimeError("idle client did not start: %r" % first)
        wait_ports(tcp=[back_port], procs=[cli])
        fwd.start([("tcp", front_port, back_port)])
        time.sleep(0.5)
        before = memory_kb(fwd.roots())
        cli_in.write(b"go\n")
        cli_in.flush()
        line = cli_out.readline().decode().split()
        if not line or line[0] != "READY":
            raise RuntimeError("idle client failed: %r" % line)
        front, back, broken = map(int, line[1:4])
        time.sleep(1.0)
        after = memory_kb(fwd.roots())
        alive = fwd.alive()
        cli_in.write(b"check\n")
        cli_in.flush()
        check = cli_out.readline().decode().split()
        res.update({"front_ok": front, "back_accepted": back, "broken": broken,
                    "rss_before_kb": before["rss_kb"],
                    "rss_after_kb": after["rss_kb"],
                    "pss_before_kb": before["pss_kb"],
                    "pss_after_kb": after["pss_kb"],
                    "relay_check_bytes": int(check[1]) if len(check) > 1 else 0,
                    "alive": alive})
        if back < n or front < n:
            res["error"] = "only %d of %d connections reached the backend" % (
                back, n)
        if res["relay_check_bytes"] < 20:
            res["error"] = "after %d idle connections only %d of 20 bytes " \
                           "were relayed" % (n, res["relay_check_bytes"])
        if not alive:
            res["error"] = "the forwarder exited while holding %d " \
                           "connections" % back
        elif back:
            res["value"] = (after["rss_kb"] - before["rss_kb"]) * 1024.0 / back
    finally:
        try:
            cli_in.close()
        except OSError:
            pass
        stop(cli)
        note = fwd.stop()
        if note:
            res["stop_error"] = note
    return res
