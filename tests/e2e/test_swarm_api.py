#!/usr/bin/python3
"""berth's Swarm client against a fake Engine API (no dockerd needed, so
it runs in the sanitizer build too).

FakeDocker's swarm mode (fakedocker.py, swarm_mode()) answers what berth
asks each round: the role (/info, or /_ping's Swarm header), the overlay
networks, then either docker_gwbridge and this node's task containers
(an overlay berth is not attached to) or, attached, the manager's
/services, /nodes, /tasks or a worker's network views. Every address is
a loopback one (127.0.0.x) where a greeting backend says who answered;
an overlay of subnet 127.0.0.0/8 makes this host's berth "attached", one
of 10.99.0.0/24 not. VIPs (127.0.0.200, .201) have no listener: berth
must never send a connection there.

Cases: a manager's names and balancing (a down node's task left out);
scaling followed within a poll, an event of type service well before
one; a worker's network view; not attached (only this node's tasks, the
one warning, never a 10.99 address); faults on /tasks (the last names
kept, one warning per distinct failure, RSS bounded, recovery); 5,000
tasks over 50 services (time, RSS, a steady round changes nothing: the
zone's SOA serial is the registry's version); leaving the swarm (every
swarm name NXDOMAIN, said once). Every berth must exit 0 on SIGTERM.
DNS: berth's own zone only, over TCP; --upstream is a dead loopback
port. Traffic: loopback only.
"""

import collections
import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dnsmsg as dm  # noqa: E402
import e2e_util as u  # noqa: E402
from fakedocker import FakeDocker, asan_env, backends, rss_kib, sanitized, who  # noqa: E402

SETTLE_S = 15.0
SLOW = sanitized()
# Scaling followed within the poll plus this (a round, the relay's view).
FOLLOW_SLACK_S = 2.0 if SLOW else 1.0
# The faults on /tasks: an endless answer is cut by berth's size bound
# (8 MB a piece) or its 10 s timeout; RSS must not follow the body.
RSS_GROWTH_MIB = float(os.environ.get("BERTH_E2E_RSS_GROWTH_MIB",
                                      "80" if SLOW else "32"))
FAULT_S = 3.5

WEB = {"127.0.0.11": "web@11", "127.0.0.12": "web@12", "127.0.0.13": "web@13",
       "127.0.0.14": "web@14", "127.0.0.15": "web@15"}


def setUpModule():
    u.require_berth()


def ask(port, name, qtype=dm.T_A, timeout=3.0):
    """(rcode, sorted answers of qtype, the message) for name over TCP
    (answers of 100 addresses do not fit a plain UDP reply)."""
    q = dm.query(name, qtype, qid=0x4242)
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.settimeout(timeout)
        s.sendall(dm.tcp_frame(q))
        m = dm.parse(dm.tcp_read(s))
    return m["rcode"], sorted(str(r["data"]) for r in m["answer"] if r["type"] == qtype), m


class SwarmCase(unittest.TestCase):
    """Greeting backends on one port TP: web@11..15 (tasks), down@19 (a
    task on a down node), local@51/52 (this node's tasks by gwbridge),
    solo@31, db@21/22. The fake holds a swarm; berth publishes
    127.0.0.1:P -> web.lab:TP, DNS on 127.0.0.1:D."""

    def setUp(self):
        specs = [(ip, g) for ip, g in WEB.items()] + [
            ("127.0.0.19", "down@19"), ("127.0.0.21", "db@21"), ("127.0.0.22", "db@22"),
            ("127.0.0.31", "solo@31"), ("127.0.0.51", "local@51"),
            ("127.0.0.52", "local@52")]
        self.tp, self.backs = backends(*specs)
        for b in self.backs:
            self.addCleanup(b.close)
        self.fake = FakeDocker(version=self.api)
        self.addCleanup(self.fake.close)

    api = "1.41"

    def start_berth(self, poll=1, extra=()):
        self.p, self.d = u.free_port(), u.free_port()
        dead = u.free_port(("127.0.0.1",))     # an upstream nobody answers on
        args = ["--docker", self.fake.url, "--swarm-poll", str(poll), "--log-level",
                "debug", "-p", f"127.0.0.1:{self.p}:web.lab:{self.tp}",
                "--dns", f"127.0.0.1:{self.d}", "--upstream", f"127.0.0.1:{dead}", *extra]
        self.t_start = time.monotonic()
        self.berth = u.Berth(args, docker=True, env=asan_env())
        self.addCleanup(self.berth.close)
        self.addCleanup(self.stop_berth)
        self.berth.wait_bound([("tcp", self.p), ("tcp", self.d), ("udp", self.d)])

    def stop_berth(self):
        rc = self.berth.stop()
        self.assertEqual(rc, 0, f"berth did not exit 0 on SIGTERM\n{self.berth.log_tail(40)}")

    def check(self, cond, msg):
        if not cond:
            self.fail(f"{msg}\n{self.berth.log_tail(30)}")

    def lines(self, pattern, mark=0):
        rx = re.compile(pattern)
        return [l for l in self.berth.stderr().splitlines()[mark:] if rx.search(l)]

    def mark(self):
        return len(self.berth.stderr().splitlines())

    def dns(self, name):
        try:
            rc, addrs, _ = ask(self.d, name)
        except (OSError, ValueError, EOFError) as e:
            return f"error: {e}", []
        return rc, addrs

    def wait_dns(self, name, want, what, timeout=SETTLE_S):
        """Waits until name answers exactly want (sorted list; None: NXDOMAIN);
        returns the seconds it took."""
        seen = []

        def pred():
            rc, addrs = self.dns(name)
            seen.append((rc, addrs))
            return (rc == dm.NXDOMAIN) if want is None else \
                (rc == dm.NOERROR and addrs == sorted(want))
        t0 = time.monotonic()
        ok = u.poll_until(pred, timeout, 0.05)
        self.check(ok, f"{what}: {name} never answered {want} in {timeout:.0f} s "
                   f"(last: {seen[-2:]})")
        return time.monotonic() - t0

    def serial(self):
        """The zone's SOA serial: the registry's version."""
        _, _, m = ask(self.d, "docker", dm.T_SOA)
        return m["answer"][0]["data"][2]

    def spread(self, n):
        return collections.Counter(who(self.p) for _ in range(n))

    # ---- the swarms

    def lab(self, subnet="127.0.0.0/8", role="manager", ping_header=False):
        """Stack lab on overlay lab_net: lab_web (vip 127.0.0.200, 3 tasks on
        ready nodes, a 4th on a down node), lab_db (dnsrr, 2 tasks); solo
        outside stacks (vip 127.0.0.201, 1 task); an ingress overlay."""
        f = self.fake
        f.swarm_mode(role, ping_header)
        f.overlay("ingress", "10.255.0.0/16", ingress=True)
        f.overlay("lab_net", subnet, stack="lab")
        f.overlay("solo_net", subnet)
        f.node("node-down0000000000000000", "down")
        net = subnet.split("/")[0].rsplit(".", 1)[0] if subnet.startswith("10.") else None
        vip = f"{net}.200/24" if net else "127.0.0.200/8"
        f.service("lab_web", "lab", "vip", vip=("lab_net", vip), replicas=4)
        f.service("lab_db", "lab", "dnsrr", replicas=2)
        f.service("solo", None, "vip",
                  vip=("solo_net", f"{net}.201/24" if net else "127.0.0.201/8"),
                  replicas=1)
        self.web_tasks = {}
        for slot in (1, 2, 3):
            ip = f"{net}.1{slot}/24" if net else f"127.0.0.1{slot}/8"
            self.web_tasks[slot] = f.task("lab_web", slot, "lab_net", ip)
        f.task("lab_web", 4, "lab_net", f"{net}.19/24" if net else "127.0.0.19/8",
               node="node-down0000000000000000")
        for slot in (1, 2):
            f.task("lab_db", slot, "lab_net",
                   f"{net}.2{slot}/24" if net else f"127.0.0.2{slot}/8")
        f.task("solo", 1, "solo_net", f"{net}.31/24" if net else "127.0.0.31/8")

    def names_of_lab(self):
        """Case 1's names, for a manager or a worker."""
        self.wait_dns("tasks.web.lab.docker", ["127.0.0.11", "127.0.0.12", "127.0.0.13"],
                      "every live task of lab_web")
        self.assertEqual(self.dns("web.lab.docker"), (dm.NOERROR, ["127.0.0.200"]))
        self.assertEqual(self.dns("2.web.lab.docker"), (dm.NOERROR, ["127.0.0.12"]))
        self.assertEqual(self.dns("4.web.lab.docker")[0], dm.NXDOMAIN,
                         "the down node's task")
        db = (dm.NOERROR, ["127.0.0.21", "127.0.0.22"])
        self.assertEqual(self.dns("db.lab.docker"), db, "dnsrr: the name is its tasks")
        self.assertEqual(self.dns("tasks.db.lab.docker"), db)
        self.assertEqual(self.dns("solo.docker"), (dm.NOERROR, ["127.0.0.201"]))
        self.assertEqual(self.dns("tasks.solo.docker"), (dm.NOERROR, ["127.0.0.31"]))
        self.assertEqual(self.dns("1.solo.docker"), (dm.NOERROR, ["127.0.0.31"]))
        got = self.spread(30)
        self.check(set(got) == {"web@11", "web@12", "web@13"},
                   f"connections to web.lab: {dict(got)} (want only and all of web@11-13)")
        sys.stderr.write(f"    30 connections: {dict(sorted(got.items()))}\n")


class Manager(SwarmCase):
    def test_1_manager_attached(self):
        self.lab()
        self.start_berth()
        self.names_of_lab()
        self.check(self.lines(r"swarm: following 3 services, 6 tasks as a manager$"),
                   "the summary line")
        self.check(not self.lines("not attached"), "attached, yet said not to be")
        paths = [p for _, p in self.fake.paths()]
        self.check(any("/info" in p for p in paths), "no /_ping Swarm header: /info asked")
        self.check(any("/tasks?filters=" in p and "running" in p for p in paths),
                   f"/tasks with desired-state running never asked: {paths[-8:]}")

    def scale_to(self, n):
        """lab_web wants n replicas and runs them: slots 1..n at 127.0.0.11...
        Returns their addresses."""
        with self.fake.lock:
            self.fake.swarm.services["lab_web"]["Spec"]["Mode"] = {
                "Replicated": {"Replicas": n}}
        for tid, t in list(self.fake.swarm.tasks.items()):
            if t["_service"] == "lab_web":
                self.fake.untask(tid)
        want = [f"127.0.0.1{slot}" for slot in range(1, n + 1)]
        for slot, ip in enumerate(want, 1):
            self.fake.task("lab_web", slot, "lab_net", ip + "/8")
        return want

    def test_2_scale_followed(self):
        self.lab()
        self.start_berth(poll=1)
        self.wait_dns("tasks.web.lab.docker", ["127.0.0.11", "127.0.0.12", "127.0.0.13"],
                      "synced")
        for n in (5, 2):
            mark = self.mark()
            want = self.scale_to(n)
            took = self.wait_dns("tasks.web.lab.docker", want, f"scaled to {n}")
            sys.stderr.write(f"    scaled to {n}: followed in {took:.2f} s (poll 1 s)\n")
            self.check(took < 1 + FOLLOW_SLACK_S, f"scale to {n} took {took:.2f} s")
            got = self.spread(4 * n)
            self.check(set(got) == {WEB[ip] for ip in want},
                       f"after scaling to {n}: {dict(got)}")
            self.check(self.lines(r"swarm: lab_web: \d+ -> %d tasks" % n, mark),
                       f"no 'lab_web: ... -> {n} tasks' line")

    def test_2b_event_before_poll(self):
        self.lab()
        # Not converging (as many tasks as replicas wanted): berth's quick
        # rounds for a converging service would hide the event's.
        self.scale_to(3)
        opened = self.fake.streams_opened
        self.start_berth(poll=30)
        self.wait_dns("tasks.web.lab.docker", ["127.0.0.11", "127.0.0.12", "127.0.0.13"],
                      "synced")
        self.check(self.fake.wait_stream(opened), "no /events stream")
        rounds = len(self.fake.paths("tasks"))
        want = self.scale_to(5)
        time.sleep(1.0)
        self.assertEqual(len(self.fake.paths("tasks")), rounds, "a round before the event")
        t0 = time.monotonic()
        self.fake.send(self.fake.swarm_event("lab_web"))
        took = self.wait_dns("tasks.web.lab.docker", want, "after a service event",
                             timeout=10)
        took = time.monotonic() - t0
        sys.stderr.write(f"    event of type service -> followed in {took:.2f} s "
                         f"(--swarm-poll 30)\n")
        self.check(took < 3.0, f"the event's round came after {took:.2f} s")


class Worker(SwarmCase):
    api = "1.43"

    def test_3_worker_network_view(self):
        self.lab(role="worker", ping_header=True)
        self.start_berth()
        self.names_of_lab()
        self.check(self.lines(r"swarm: following \d+ services, \d+ tasks as a worker "
                              r"\(network view\)"), "the worker's summary line")
        keys = {k for _, k, _ in self.fake.requests}
        self.check(not keys & {"services", "tasks", "nodes", "info"},
                   f"a worker asked a manager's endpoint (or /info despite the "
                   f"header): {sorted(keys)}")
        views = [p for _, p in self.fake.paths("view")]
        self.check(any("verbose=true" in p for p in views), f"no verbose view: {views}")

    def test_3b_outside_stacks_on_a_stack_network(self):
        """A service outside stacks attached to a stack's overlay (docker
        service create --network lab_net solo2): a manager names it solo2
        (its labels say no stack); the worker must too, not solo2.lab."""
        self.lab(role="worker", ping_header=True)
        self.fake.service("solo2", None, "dnsrr", replicas=1)
        self.fake.task("solo2", 1, "lab_net", "127.0.0.31/8")
        self.start_berth()
        self.wait_dns("tasks.web.lab.docker", ["127.0.0.11", "127.0.0.12", "127.0.0.13"],
                      "synced")
        self.assertEqual(self.dns("tasks.solo2.docker"), (dm.NOERROR, ["127.0.0.31"]),
                         "worker: solo2 (no stack) named as the manager names it "
                         f"(tasks.solo2.lab.docker: {self.dns('tasks.solo2.lab.docker')})")


class NotAttached(SwarmCase):
    def test_4_only_local_tasks(self):
        self.lab(subnet="10.99.0.0/24")
        # Tasks 1 and 2 of lab_web run on this node (docker_gwbridge
        # 127.0.0.51/52); 3 on another node, out of reach.
        for slot, gw in ((1, "127.0.0.51"), (2, "127.0.0.52")):
            self.fake.untask(self.web_tasks[slot])
            self.fake.task("lab_web", slot, "lab_net", f"10.99.0.1{slot}/24", gwbridge=gw)
        self.start_berth(poll=1)
        local = ["127.0.0.51", "127.0.0.52"]
        self.wait_dns("tasks.web.lab.docker", local, "this node's tasks")
        self.assertEqual(self.dns("web.lab.docker"), (dm.NOERROR, local),
                         "not attached: the name is the reachable tasks, not the VIP")
        self.assertEqual(self.dns("1.web.lab.docker"), (dm.NOERROR, ["127.0.0.51"]))
        for name in ("3.web.lab.docker", "db.lab.docker", "solo.docker",
                     "tasks.solo.docker"):
            self.assertEqual(self.dns(name)[0], dm.NXDOMAIN, f"{name}: out of reach")
        rounds0 = len(self.fake.paths("local"))
        u.poll_until(lambda: len(self.fake.paths("local")) >= rounds0 + 3, 10, 0.1)
        got = self.spread(20)
        self.check(set(got) == {"local@51", "local@52"}, f"connections: {dict(got)}")
        said = self.lines(r"not attached to overlay 'lab_net' \(10\.99\.0\.0/24\)")
        self.check(len(said) == 1, f"'not attached' said {len(said)} times over "
                   f"{len(self.fake.paths('local'))} rounds")
        sys.stderr.write(f"    logged: {said[0].strip()}\n")
        # The line names the subnet; nothing else may name a 10.99 address.
        self.check(not self.lines(r"\b10\.99\.0\.(?!0/24)"), "a 10.99 address in the log")
        names = [f"{p}web.lab.docker" for p in ("", "tasks.", "1.", "2.", "3.")] + \
            ["db.lab.docker", "tasks.db.lab.docker", "solo.docker", "tasks.solo.docker"]
        seen = [a for n in names for a in self.dns(n)[1]]
        self.check(not [a for a in seen if a.startswith("10.99.")],
                   f"a DNS answer with a 10.99 address: {seen}")
        self.check(not [p for _, p in self.fake.paths() if "/tasks" in p],
                   "asked /tasks though no overlay is attached")


class Faults(SwarmCase):
    def test_5_tasks_faults(self):
        self.lab()
        self.start_berth(poll=1)
        three = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
        self.wait_dns("tasks.web.lab.docker", three, "synced")
        rss0 = rss_kib(self.berth.pid)
        peak = rss0
        for kind, text in (("500", "tasks are unavailable"), ("garbage", ""),
                           ("endless500", "tasks"), ("endlessjson", "")):
            mark = self.mark()
            self.fake.fault("tasks", kind, text)
            n0 = len(self.fake.paths("tasks"))
            end = time.monotonic() + FAULT_S
            while time.monotonic() < end:
                peak = max(peak, rss_kib(self.berth.pid))
                time.sleep(0.1)
            self.fake.clear() if kind.startswith("endless") else None
            u.poll_until(lambda: len(self.fake.paths("tasks")) >= n0 + 2, 25, 0.1)
            self.fake.clear()
            warned = self.lines(r"swarm: GET /tasks", mark)
            asked = len(self.fake.paths("tasks")) - n0
            sys.stderr.write(f"    {kind}: {asked} rounds, {len(warned)} warning(s): "
                             f"{warned[0].strip() if warned else '-'}\n")
            self.check(len(warned) == 1, f"{kind}: {len(warned)} warnings over {asked} "
                       f"rounds (want one per distinct failure)")
            self.check(self.berth.alive(), f"berth died on {kind}")
            self.assertEqual(self.dns("tasks.web.lab.docker"), (dm.NOERROR, three),
                             f"{kind}: the last names not kept")
            got = self.spread(6)
            self.check(set(got) <= {"web@11", "web@12", "web@13"} and len(got) == 3,
                       f"{kind}: connections {dict(got)}")
            # Recovered: a change is followed again.
            self.fake.task("lab_web", 5, "lab_net", "127.0.0.15/8")
            self.wait_dns("tasks.web.lab.docker", three + ["127.0.0.15"],
                          f"recovered from {kind}")
            tid = next(t for t, v in self.fake.swarm.tasks.items()
                       if v["_service"] == "lab_web" and v["Slot"] == 5)
            self.fake.untask(tid)
            self.wait_dns("tasks.web.lab.docker", three, f"after {kind}")
        growth = (peak - rss0) / 1024
        sys.stderr.write(f"    RSS {rss0 / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB "
                         f"(+{growth:.1f}, bound {RSS_GROWTH_MIB:.0f})\n")
        self.check(growth < RSS_GROWTH_MIB, f"RSS grew {growth:.1f} MiB")


class Scale(SwarmCase):
    NSVC, PER = 50, 100
    # Measured: see the report; per entry berth holds a registry entry, its
    # names and the round's task structs (some 600 bytes each, 5,000 of
    # them: 3 MB a copy).
    RSS_MIB = float(os.environ.get("BERTH_E2E_SWARM_RSS_MIB", "160" if SLOW else "48"))

    def test_6_five_thousand_tasks(self):
        f = self.fake
        f.swarm_mode("manager")
        f.overlay("big_net", "127.0.0.0/8", stack="big")
        f.swarm_bulk(self.NSVC, self.PER, "big_net")
        self.start_berth(poll=2)
        last = f"tasks.s{self.NSVC - 1:02d}.big.docker"
        t0 = self.t_start
        u.poll_until(lambda: self.dns(last)[0] == dm.NOERROR, 60, 0.05)
        took = time.monotonic() - t0
        sys.stderr.write(f"    first round: {self.NSVC} services, "
                         f"{self.NSVC * self.PER} tasks named in {took:.2f} s "
                         f"(from berth's start)\n")
        for i in (0, 17, self.NSVC - 1):
            rc, addrs = self.dns(f"tasks.s{i:02d}.big.docker")
            self.assertEqual((rc, len(addrs)), (dm.NOERROR, self.PER), f"service s{i:02d}")
            self.assertIn(f"127.{10 + i}.0.1", addrs)
        self.check(self.lines(r"swarm: following 50 services, 5000 tasks as a manager"),
                   "summary line")
        serial = self.serial()
        n0 = len(f.paths("tasks"))
        u.poll_until(lambda: len(f.paths("tasks")) >= n0 + 2, 20, 0.1)
        time.sleep(0.5)
        self.check(len(f.paths("tasks")) >= n0 + 2, "no steady rounds")
        self.assertEqual(self.serial(), serial,
                         "a steady round changed the registry (SOA serial)")
        self.check(not self.lines(r"swarm: big_s\d+: "), "a steady round said a change")
        rss = rss_kib(self.berth.pid) / 1024
        sys.stderr.write(f"    RSS after {len(f.paths('tasks'))} rounds: {rss:.1f} MiB "
                         f"(bound {self.RSS_MIB:.0f}); SOA serial steady at {serial}\n")
        self.check(rss < self.RSS_MIB, f"RSS {rss:.1f} MiB")


class Leave(SwarmCase):
    def test_7_left_the_swarm(self):
        self.lab()
        self.start_berth(poll=1)
        self.wait_dns("tasks.web.lab.docker", ["127.0.0.11", "127.0.0.12", "127.0.0.13"],
                      "synced")
        self.fake.swarm_mode("")
        took = self.wait_dns("tasks.web.lab.docker", None, "left the swarm")
        sys.stderr.write(f"    left the swarm: names gone in {took:.2f} s\n")
        for name in ("web.lab.docker", "2.web.lab.docker", "db.lab.docker",
                     "tasks.db.lab.docker", "solo.docker", "tasks.solo.docker"):
            self.assertEqual(self.dns(name)[0], dm.NXDOMAIN, name)
        self.assertEqual(self.spread(3), collections.Counter({"closed": 3}),
                         "web.lab still forwards")
        n0 = len(self.fake.paths("info"))
        u.poll_until(lambda: len(self.fake.paths("info")) >= n0 + 3, 10, 0.1)
        said = self.lines(r"swarm: this engine is not in a swarm")
        self.check(len(said) == 1, f"leaving said {len(said)} times")
        sys.stderr.write(f"    logged: {said[0].strip()}\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
