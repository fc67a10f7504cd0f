#!/usr/bin/python3
"""berth on a three-node Docker Swarm (issue 16, /work/notes/i16-contract.md):
three dockerd, each in a network namespace of the test's own
(swarm_lib.Swarm3: node1 manager at 10.131.0.11, node2 and node3 workers at
.12 and .13, a client namespace at .50, one bridge, no default route
anywhere, asserted), and examples/swarm-stack.yml deployed as stack `lab`:

  lab_web     6 replicas of hostweb, answering "lab_web.<slot>@<node>"; the
              spread scheduler puts two on each node (asserted: tasks on
              all three)
  lab_berth   berth:local as a global service on the overlay lab_net, each
              node's /var/run/docker.sock mounted (the same path in every
              node's private /run), 8080/tcp and 53/udp (as 5353) published
              in mode host on every node; --upstream a dnsmasq the test
              runs in each node's namespace on docker_gwbridge's gateway

Infrastructure first (holds whatever berth does): tasks run on all three
nodes, answer across nodes inside the overlay, a berth task runs on each
node with its ports. Then berth, from the client namespace: through each
node's berth port, answers from tasks on the other nodes (printed: which
task answered through which node); DNS tasks.web.lab.docker from each
node's berth (the manager's and the workers' view); then node3's dockerd is
stopped: clients through node1 and node2 still get answers, and the time
until none fails and until no answer comes from node3 is printed.

No packet leaves the machine: every dockerd runs in a namespace without a
default route. Exit 77 (skipped) without root, dockerd, docker, containerd,
runc, nsenter, unshare, static busybox, ldd, dig, dnsmasq or curl. About 35 s
(Swarm marks a stopped node Down 9-14 s after it goes).
"""

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dockerd as dk  # noqa: E402
import e2e_util as u  # noqa: E402
import swarm_lib as sl  # noqa: E402
import test_dns as td  # noqa: E402   (dig output parsing, dnsmasq path)

STACK_FILE = os.path.join(sl.REPO, "examples", "swarm-stack.yml")
NET, WEB, BERTH_SVC = "lab_net", "lab_web", "lab_berth"
HTTP_PORT, DNS_PORT = 8080, 5353     # the example's: the namespaces are ours
REPLICAS = 6
POLL_S, MARGIN_S = 10.0, 5.0
CURL = shutil.which("curl")

S = None
DEPLOYED = None      # time.monotonic() of the stack deploy
RESULTS = {}


note = sl.note
requirements = sl.require_clients


def setUpModule():
    global S, DEPLOYED
    u.require_berth()
    requirements()
    signal.signal(signal.SIGTERM, _interrupt)
    atexit.register(_cleanup)
    t0 = time.monotonic()
    S = sl.Swarm3()
    S.__enter__()
    note(f"swarm of 3 up: {S.timing}")
    # An upstream per node, on docker_gwbridge's gateway in the node's
    # namespace (the berth container's default route leads there).
    gws = set()
    for n in S.nodes:
        _, gw = n.gwbridge()
        gws.add(gw)
        S.netns(n).spawn([td.DNSMASQ, "-k", "-p", "53", f"--listen-address={gw}", "--bind-interfaces",
                  "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--user=nobody",
                  "--pid-file=", "--address=/example.test/192.0.2.10"],
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if len(gws) != 1:
        raise AssertionError(f"docker_gwbridge gateways differ between nodes: {gws}")
    DEPLOYED = time.monotonic()
    S.manager.deploy(STACK_FILE, "lab", env={
        "WEB_IMAGE": sl.WEB_IMAGE, "WEB_REPLICAS": str(REPLICAS),
        "BERTH_HTTP_PORT": str(HTTP_PORT), "BERTH_DNS_PORT": str(DNS_PORT),
        "BERTH_UPSTREAM": f"{gws.pop()}:53"})
    S.manager.wait_tasks(WEB, REPLICAS, where=lambda ts: len({t["NodeID"] for t in ts}) == 3)
    S.manager.wait_tasks(BERTH_SVC, 3)
    RESULTS["swarm up and stack running"] = f"{time.monotonic() - t0:.1f} s"


def tearDownModule():
    t0 = time.monotonic()
    _cleanup()
    RESULTS["teardown"] = f"{time.monotonic() - t0:.1f} s"
    note("summary: " + "; ".join(f"{k}: {v}" for k, v in RESULTS.items()))


def _cleanup():
    global S
    if S is not None:
        try:
            S.close()
        except Exception as e:
            note(f"cleanup: {e}")
    S = None


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def hostnames(tasks):
    ids = S.node_ids()
    return {f"{WEB}.{t['Slot']}@{ids[t['NodeID']]}" for t in tasks}


def get(node, timeout=3):
    """GET / through a node's berth port, from the client namespace."""
    r = S.client.run([CURL, "-s", "--noproxy", "*", "-m", str(timeout),
                      f"http://{node.addr}:{HTTP_PORT}/"], check=False, timeout=timeout + 10)
    return r.returncode, r.stdout.strip()


def answers(node, n):
    seen, errors = [], {}
    for _ in range(n):
        rc, body = get(node)
        if rc == 0 and body:
            seen.append(body)
        else:
            errors[rc] = errors.get(rc, 0) + 1
    return seen, errors


def dns(node, name):
    """dig at a node's published DNS port, from the client namespace."""
    r = S.client.run([td.DIG, f"@{node.addr}", "-p", str(DNS_PORT), "+time=3", "+tries=1",
                      name, "A"], check=False, timeout=20)
    out = r.stdout + r.stderr
    return td.status(out), sorted(x[4] for x in td.section(out, "ANSWER") if x[3] == "A")


def berth_log(node):
    cids = node.docker("ps", "-q", "--filter", f"name={BERTH_SVC}", check=False).split()
    out = ""
    for c in cids:
        r = subprocess.run([dk.DOCKER, "logs", c], env=node.env, capture_output=True,
                           text=True, timeout=30)
        out += r.stdout + r.stderr
    return f"--- berth on node{node.n}:\n" + "\n".join(out.splitlines()[-25:])


class Infrastructure(unittest.TestCase):

    def test_no_namespace_has_a_default_route(self):
        S.assert_no_default_route()
        r = S.client.run(["ip", "route", "get", "192.0.2.1"], check=False)
        self.assertNotEqual(r.returncode, 0, "the client namespace can reach outside")

    def test_tasks_on_every_node_answer_across_the_overlay(self):
        tasks = S.manager.tasks(WEB)
        want = hostnames(tasks)
        self.assertEqual({h.split("@")[1] for h in want}, {"node1", "node2", "node3"})
        got = set()
        for _, _, addr in S.manager.task_addrs(WEB, NET).values():
            out = S.manager.docker(
                "run", "--rm", "--network", NET, sl.WEB_IMAGE, "sh", "-c",
                f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {addr} 80")
            got.add(out.splitlines()[-1].strip() if out else "")
        note(f"from node1 inside {NET}: {sorted(got)}")
        self.assertEqual(got, want)

    def test_a_berth_task_on_every_node_with_host_ports(self):
        for n in S.nodes:
            cid = n.docker("ps", "-q", "--filter", f"name={BERTH_SVC}")
            self.assertTrue(cid, f"no berth task on node{n.n}")
            ports = n.docker("port", cid)
            self.assertIn(f"8080/tcp -> 0.0.0.0:{HTTP_PORT}", ports)
            self.assertIn(f"53/udp -> 0.0.0.0:{DNS_PORT}", ports)
            # Its upstream is the test's dnsmasq on that node.
            self.assertEqual(dns(n, "example.test"), ("NOERROR", ["192.0.2.10"]),
                             berth_log(n))


class ThroughBerth(unittest.TestCase):
    """berth's part: fails until berth follows Swarm."""

    def test_1_each_node_reaches_tasks_on_the_others(self):
        want = hostnames(S.manager.tasks(WEB))
        addrs = sorted(a for _, _, a in S.manager.task_addrs(WEB, NET).values())
        # berth may start before the stack's web service exists: it has
        # the poll interval (and a margin) to know all six tasks.
        for n in S.nodes:
            ok = u.poll_until(lambda: dns(n, "tasks.web.lab.docker")[1] == addrs,
                              POLL_S + MARGIN_S, 0.25)
            self.assertTrue(ok, f"node{n.n}: tasks.web.lab.docker "
                            f"{dns(n, 'tasks.web.lab.docker')}, want {addrs}\n" + berth_log(n))
        RESULTS["every berth knows the 6 tasks"] = \
            f"{time.monotonic() - DEPLOYED:.1f} s after the deploy"
        failures = []
        for n in S.nodes:
            seen, errors = answers(n, 24)
            remote = sorted({h for h in seen if not h.endswith("@" + n.hostname)})
            note(f"through node{n.n}'s berth: {len(seen)} answers, errors {errors}; "
                 f"tasks on other nodes answered: {remote}")
            RESULTS[f"via node{n.n}"] = ", ".join(remote) or "none remote"
            if errors or not remote or set(seen) - want:
                failures.append(f"node{n.n}: errors {errors}, seen {sorted(set(seen))}\n"
                                + berth_log(n))
        self.assertEqual(failures, [])

    def test_0_manager_and_worker_views(self):
        for n in S.nodes:
            role = "a manager" if n is S.manager else r"a worker \(network view\)"
            line = rf"swarm: following \d+ services, \d+ tasks as {role}"
            self.assertTrue(u.poll_until(lambda: re.search(line, berth_log(n)),
                                         POLL_S + MARGIN_S, 0.5), berth_log(n))

    def test_2_dns_from_every_node(self):
        addrs = sorted(a for _, _, a in S.manager.task_addrs(WEB, NET).values())
        vip = S.manager.vip(WEB, NET)
        for n in S.nodes:
            self.assertEqual(dns(n, "tasks.web.lab.docker"), ("NOERROR", addrs),
                             f"node{n.n}\n" + berth_log(n))
            self.assertEqual(dns(n, "web.lab.docker"), ("NOERROR", [vip]), f"node{n.n}")
            st, one = dns(n, "3.web.lab.docker")
            self.assertEqual((st, len(one)), ("NOERROR", 1), f"node{n.n}")
            self.assertIn(one[0], addrs)

    def test_3_a_worker_stops(self):
        # node3's dockerd stops (its tasks with it). Through node1 and
        # node2, every request is timed: failures, and slow ones (over 1 s:
        # berth tried a dead task first) are counted until both berths' DNS
        # has dropped node3's tasks and 10 requests in a row were fast and
        # answered; the times are printed.
        ids = {v: k for k, v in S.node_ids().items()}
        dead = {a for _, node, a in S.manager.task_addrs(WEB, NET).values()
                if node == ids["node3"]}
        self.assertTrue(dead, "no web task on node3")
        live = S.nodes[:2]
        t0 = time.monotonic()
        took = S.node(3).stop_dockerd()
        note(f"node3's dockerd stopped in {took:.1f} s (its tasks {sorted(dead)})")
        st = {n.n: {"fail": 0, "slow": 0, "last_fail": None, "last_slow": None,
                    "dns_clean": None, "streak": 0} for n in live}
        down_at = None

        def done():
            return all(x["dns_clean"] is not None and x["streak"] >= 10 for x in st.values())

        while time.monotonic() < t0 + 75 and not done():
            if down_at is None and "Down" in S.manager.docker(
                    "node", "ls", "--filter", "name=node3", "--format", "{{.Status}}",
                    check=False):
                down_at = time.monotonic() - t0
            for n in live:
                x = st[n.n]
                t = time.monotonic()
                rc, body = get(n)
                dt, now = time.monotonic() - t, time.monotonic() - t0
                if rc != 0 or not body or body.endswith("@node3"):
                    x["fail"] += 1
                    x["last_fail"], x["streak"] = now, 0
                elif dt > 1.0:
                    x["slow"] += 1
                    x["last_slow"], x["streak"] = now, 0
                else:
                    x["streak"] += 1
                if x["dns_clean"] is None:
                    _, addrs = dns(n, "tasks.web.lab.docker")
                    if addrs and not dead & set(addrs):
                        x["dns_clean"] = time.monotonic() - t0

        def secs(v, none="never (75 s)"):
            return none if v is None else f"{v:.1f} s"

        RESULTS["node3 marked Down by Swarm"] = secs(down_at)
        for n in live:
            x = st[n.n]
            RESULTS[f"node3 stopped, via node{n.n}"] = (
                f"DNS without node3's tasks after {secs(x['dns_clean'])}; {x['fail']} failed "
                f"requests (last at {secs(x['last_fail'], 'none')}), {x['slow']} slow over 1 s "
                f"(last at {secs(x['last_slow'], 'none')})")
            note(f"node3 stopped, via node{n.n}: " + RESULTS[f"node3 stopped, via node{n.n}"])
        for n in live:
            self.assertIsNotNone(st[n.n]["dns_clean"], f"node{n.n}'s berth still names "
                                 f"node3's tasks: {dns(n, 'tasks.web.lab.docker')}\n"
                                 + berth_log(n))
            self.assertGreaterEqual(st[n.n]["streak"], 10, berth_log(n))


if __name__ == "__main__":
    u.main_or_skip(requirements, "namespaces, dockerd, containers")
