#!/usr/bin/python3
"""berth syncing a Docker host with many containers, without stalling its
ports (no dockerd needed).

The fake Engine API (fakedocker.py) serves N running containers (30,000 by
default; BERTH_E2E_SCALE_N to change it, e.g. 100000 by hand), their list
(~0.9 KB an entry, in dockerd's shape: 26 MB at 30,000) and inspect answers
made from templates. While berth lists and inspects them all, a client in
a process of its own (so the fake's threads cannot delay it) connects
through an IP-target port to a loopback echo backend over and over:
connect, send a byte, read it back, close. Every round's latency is
recorded. Every 10th round it also opens and closes a connection to a
name-target port, so names are looked up while the table changes. Then
1,000 containers go away and the event stream ends: berth resyncs (the
sweep of what the list lacks, at full size) under the same probe.

Asserts: both syncs complete (berth logs "synced N+1 running containers",
then "resynced N-999 ..."), every round succeeds, and the worst round while
syncing stays under BERTH_E2E_SCALE_MAX_MS (default 400 ms, for noisy
shared machines and sanitizer builds; tens of ms are measured. Before the
sync was made linear and streamed, ports stood still for 2-3 s at 30,000
and the sync never finished at 100,000). A name target works afterwards.
Prints the sync times, the latencies and berth's RSS.
BERTH_E2E_SCALE_ARGS adds berth arguments (e.g. --labels). Traffic:
loopback only.
"""

import json
import os
import re
import select
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402
from fakedocker import FakeDocker, asan_env, backends, rss_kib, sanitized, who  # noqa: E402

N = int(os.environ.get("BERTH_E2E_SCALE_N", "30000"))
EXTRA = os.environ.get("BERTH_E2E_SCALE_ARGS", "").split()   # e.g. --labels
MAX_MS = float(os.environ.get("BERTH_E2E_SCALE_MAX_MS", "400"))
SYNC_TIMEOUT_S = max(120.0, N / 200)   # the fake answers some 2,000 inspects a second
PAUSE_S = 0.005                       # between probe rounds


def setUpModule():
    u.require_berth()


# ---------------------------------------------------------------- the probe

def probe(port, name_port, max_s):
    """Rounds through port until stdin says stop (or max_s); prints JSON
    [[seconds since start, round ms or -1 for a failure, error], ...].
    Every 10th round, a connection to name_port is opened and closed (not
    timed: it makes berth look a name up)."""
    out, t_start = [], time.monotonic()
    while time.monotonic() - t_start < max_s:
        if select.select([sys.stdin], [], [], 0)[0]:
            break
        if len(out) % 10 == 9:
            try:
                with socket.create_connection(("127.0.0.1", name_port), timeout=5) as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        t0 = time.monotonic()
        err = ""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.sendall(b"x")
                if s.recv(1) != b"x":
                    err = "no echo"
        except OSError as e:
            err = str(e)
        dt = (time.monotonic() - t0) * 1000
        out.append([round(t0 - t_start, 4), -1 if err else round(dt, 2), err])
        time.sleep(PAUSE_S)
    json.dump(out, sys.stdout)


class Prober:
    def __init__(self, port, name_port, max_s):
        self.t0 = time.monotonic()
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--probe",
                                   str(port), str(name_port), str(max_s)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def stop(self):
        """The rounds, as [monotonic time, ms or -1, error]."""
        if self.p.poll() is None:
            self.p.stdin.write(b"stop\n")
            self.p.stdin.flush()
        data, _ = self.p.communicate(timeout=60)
        return [[self.t0 + t, ms, e] for t, ms, e in json.loads(data or b"[]")]

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


# ---------------------------------------------------------------- the test

class Scale(unittest.TestCase):
    def setUp(self):
        if not os.access(u.UDP_ECHO, os.X_OK):
            self.skipTest(f"no tests/udp_echo at {u.UDP_ECHO} (set UDP_ECHO=)")
        self.echo = u.Proc([u.UDP_ECHO, "-t", "-b", "127.0.0.1", "0"], stdout=subprocess.PIPE)
        self.addCleanup(self.echo.close)
        self.echo_port = int(self.echo.proc.stdout.readline() or 0)
        self.assertTrue(self.echo_port, "udp_echo -t did not start")
        self.tp, backs = backends(("127.0.0.2", "web@2"))
        for b in backs:
            self.addCleanup(b.close)
        # Not listening yet: berth starts, the probe starts, then the sync.
        self.fake = FakeDocker(start=False)
        self.addCleanup(self.fake.close)
        self.fake.add("web", "127.0.0.2")
        t0 = time.monotonic()
        self.fake.bulk(N)
        sys.stderr.write(f"\n    {N} containers made in {time.monotonic() - t0:.1f} s "
                         f"(list {len(self.fake.bulk_list) / 1e6:.0f} MB)\n")

    def wait_synced(self, berth, k):
        """The container count of berth's k-th "(re)synced N running
        containers" line, once it is there, and when it was seen."""
        def said():
            found = re.findall(r"synced (\d+) running containers", berth.stderr())
            return len(found) >= k and int(found[k - 1]) or not berth.alive()
        n = u.poll_until(said, SYNC_TIMEOUT_S, 0.05)
        return n, time.monotonic()

    def test_ports_keep_forwarding_while_syncing(self):
        ip_port, web_port = u.free_port(), u.free_port()
        berth = u.Berth(["--docker", self.fake.url, "--log-level", "info",
                         "-p", f"127.0.0.1:{ip_port}:127.0.0.1:{self.echo_port}",
                         "-p", f"127.0.0.1:{web_port}:web:{self.tp}"] + EXTRA,
                        docker=True, env=asan_env())
        self.addCleanup(berth.close)
        berth.wait_bound([("tcp", ip_port), ("tcp", web_port)])
        prober = Prober(ip_port, web_port, 3 * SYNC_TIMEOUT_S)
        self.addCleanup(prober.kill)
        time.sleep(0.5)                     # the probe's first rounds: before the sync
        self.fake.start()
        first, t_synced = self.wait_synced(berth, 1)
        rss = rss_kib(berth.pid)
        self.assertEqual(first, N + 1, f"no sync of {N + 1} containers in "
                         f"{SYNC_TIMEOUT_S:.0f} s\n{berth.log_tail()}")
        # Gone while berth was not listening: the resync's sweep finds them.
        self.fake.bulk_remove(list(self.fake.bulk_ids)[:1000])
        self.fake.send("end")
        again, t_resynced = self.wait_synced(berth, 2)
        time.sleep(0.5)                     # and some rounds after it
        rounds = prober.stop()
        self.assertTrue(berth.alive(), berth.log_tail())
        self.assertEqual(again, N + 1 - 1000, f"no resync of {N + 1 - 1000} containers "
                         f"in {SYNC_TIMEOUT_S:.0f} s\n{berth.log_tail()}")
        lists = [t for t, _ in self.fake.paths("list")]
        t1 = time.monotonic()
        name = who(web_port)
        name_ms = (time.monotonic() - t1) * 1000

        failed = [r for r in rounds if r[1] < 0]
        windows = (("sync", lists[0], t_synced), ("resync", lists[-1], t_resynced))
        worst_all = 0.0
        sys.stderr.write(f"    {'ASan build, ' if sanitized() else ''}{N + 1} containers; "
                         f"RSS after the first sync {rss / 1024:.0f} MiB\n")
        for what, t0, t1 in windows:
            # Rounds that overlap the window: one that began just before
            # the list came in may be the one held up by it.
            during = sorted(ms for t, ms, _ in rounds
                            if ms >= 0 and t <= t1 and t + ms / 1000 >= t0)
            self.assertTrue(during, f"no probe round during the {what}")
            pct = lambda q: during[min(len(during) - 1, int(q * len(during)))]  # noqa: E731
            sys.stderr.write(
                f"    {what}: {t1 - t0:.1f} s from the list request to the log line; "
                f"IP-target connect+echo {len(during)} rounds, median {pct(0.5):.1f} ms, "
                f"p99 {pct(0.99):.1f} ms, worst {during[-1]:.1f} ms\n")
            worst_all = max(worst_all, during[-1])
        worst = max(rounds, key=lambda r: r[1])
        t_base = rounds[0][0]
        sys.stderr.write(f"    worst round of the whole run {worst[1]:.1f} ms at "
                         f"{worst[0] - t_base:.1f} s (lists asked at "
                         f"{', '.join(f'{t - t_base:.1f}' for t in lists)} s, synced at "
                         f"{t_synced - t_base:.1f} and {t_resynced - t_base:.1f} s); "
                         f"a name target after it: {name_ms:.0f} ms\n")
        self.assertFalse(failed, f"{len(failed)} probe rounds failed: {failed[:5]}")
        self.assertLess(worst_all, MAX_MS,
                        f"an IP-target connection waited {worst_all:.0f} ms while "
                        f"berth synced {N} containers")
        self.assertEqual(name, "web@2", "the name target after the sync")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--probe":
        probe(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    else:
        u.main()
