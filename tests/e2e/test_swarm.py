#!/usr/bin/python3
"""berth on a one-node Docker Swarm (issue 16, /work/notes/i16-contract.md):
one dockerd in a network namespace of the test's own with only lo and no
default route (swarm_lib.SingleSwarm), and examples/swarm-stack.yml deployed
as stack `lab` as shipped (ports 8080 and 5353/udp, the node's
/var/run/docker.sock) but for the test's images and upstream:

  lab_web     3 replicas of berth-test/busybox's hostweb: GET / answers the
              hostname "lab_web.<slot>@node1" (the stack's template)
  lab_berth   berth:local (scripts/berth-image) as a global service on the
              attachable overlay lab_net, the daemon's socket mounted,
              --publish 8080:web.lab:80 and --dns 0.0.0.0:53 published in
              mode host, --upstream a dnsmasq the test runs on
              docker_gwbridge's gateway

The infrastructure is checked on its own (the image runs the same berth,
tasks answer inside the overlay and through docker_gwbridge, berth's
container forwards other names to the test's dnsmasq). Then berth: a curl
client in the node's namespace (the "host") through the published port sees
all three tasks; DNS through the published UDP port: web.lab.docker (the
VIP: berth is attached), tasks.web.lab.docker (the three overlay addresses,
as the task list says), 2.web.lab.docker (slot 2's); scaled to 5, five tasks
answer and DNS lists five within the poll interval and a margin, and back
to 3 (the times printed). A berth on the host (not attached) reaches all
three through docker_gwbridge and logs the "not attached" line.

Why a namespace: a swarm daemon makes a bridge called docker_gwbridge in
its network namespace, the same name for every swarm daemon, so two in the
root namespace share it (and hand out the same addresses); and an overlay
address seen from the root namespace would take the default route and
leave the machine. Swarm's VIPs never answer here (no IPVS): nothing
depends on them. Exit 77 (skipped) without root, dockerd, docker,
containerd, runc, nsenter, unshare, static busybox, ldd, dig, dnsmasq or
curl. About 25 s.
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

CURL = shutil.which("curl")

STACK_FILE = os.path.join(sl.REPO, "examples", "swarm-stack.yml")
POLL_S = 10.0        # berth's default --swarm-poll
MARGIN_S = 5.0
NET = "lab_net"
WEB = "lab_web"
HTTP_PORT, DNS_PORT = 8080, 5353     # the example's: the namespace is ours
UPSTREAM_PORT = 53

S = None             # SingleSwarm
N = None             # its node (the manager)
GW = None            # docker_gwbridge's gateway: the test's dnsmasq is there
RESULTS = {}


note = sl.note
requirements = sl.require_clients


def setUpModule():
    global S, N, GW
    u.require_berth()
    requirements()
    signal.signal(signal.SIGTERM, _interrupt)
    atexit.register(_cleanup)
    t0 = time.monotonic()
    S = sl.SingleSwarm()
    S.__enter__()
    N = S.manager
    note(f"one-node swarm up: {S.timing}")
    # swarm init made docker_gwbridge (for the ingress sandbox): the
    # upstream listens on its gateway, which berth's container reaches.
    _, GW = N.gwbridge()
    S.client.spawn([td.DNSMASQ, "-k", "-p", str(UPSTREAM_PORT), f"--listen-address={GW}",
                    "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                    "--user=nobody", "--pid-file=", "--address=/example.test/192.0.2.10"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not u.poll_until(lambda: dig(GW, UPSTREAM_PORT, "example.test") ==
                        ("NOERROR", ["192.0.2.10"]), 15, 0.2):
        raise AssertionError(f"dnsmasq on {GW}:{UPSTREAM_PORT} does not answer")
    # The example as shipped (port 8080, 5353/udp, the node's
    # /var/run/docker.sock), but the test's images and upstream.
    N.deploy(STACK_FILE, "lab", env={"WEB_IMAGE": sl.WEB_IMAGE,
                                     "BERTH_UPSTREAM": f"{GW}:{UPSTREAM_PORT}"})
    N.wait_tasks(WEB, 3)
    N.wait_tasks("lab_berth", 1)
    RESULTS["swarm up and stack running"] = f"{time.monotonic() - t0:.1f} s"


def tearDownModule():
    _cleanup()
    if RESULTS:
        note("summary: " + "; ".join(f"{k}: {v}" for k, v in RESULTS.items()))


def _cleanup():
    global S, N
    if S is not None:
        try:
            S.close()
        except Exception as e:       # keep cleaning the rest
            note(f"cleanup: {e}")
    S = N = None


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def berth_log():
    cid = N.container_of(N.tasks("lab_berth")[0])
    r = subprocess.run([dk.DOCKER, "logs", cid], env=N.env, capture_output=True, text=True,
                       timeout=30)
    return r.stdout + r.stderr


def get(port, host="127.0.0.1", timeout=3):
    """GET / through curl in the node's namespace: (exit code, body)."""
    r = S.client.run([CURL, "-s", "--noproxy", "*", "-m", str(timeout),
                      f"http://{host}:{port}/"], check=False, timeout=timeout + 10)
    return r.returncode, r.stdout.strip()


def answers(port, n, host="127.0.0.1"):
    """n GETs through a port: (bodies seen, {curl exit: count} of failures)."""
    seen, errors = [], {}
    for _ in range(n):
        rc, body = get(port, host)
        if rc == 0 and body:
            seen.append(body)
        else:
            errors[rc] = errors.get(rc, 0) + 1
    return seen, errors


def web_hostnames():
    """The hostnames the running web tasks answer with (the stack's template)."""
    return {f"{WEB}.{t['Slot']}@node1" for t in N.tasks(WEB)}


def dig(server, port, name, rtype="A"):
    """dig in the node's namespace: (status, sorted answers of rtype)."""
    r = S.client.run([td.DIG, f"@{server}", "-p", str(port), "+time=3", "+tries=1",
                      name, rtype], check=False, timeout=20)
    out = r.stdout + r.stderr
    return td.status(out), sorted(x[4] for x in td.section(out, "ANSWER") if x[3] == rtype)


def dns(name, rtype="A"):
    """Through the berth container's published UDP port."""
    return dig("127.0.0.1", DNS_PORT, name, rtype)


class Infrastructure(unittest.TestCase):
    """What berth's Swarm support stands on: these hold whatever berth does."""

    def test_image_runs_this_berth(self):
        mine = subprocess.run([u.BERTH, "--version"], capture_output=True,
                              text=True).stdout.strip()
        theirs = N.docker("run", "--rm", sl.BERTH_IMAGE, "--version")
        note(f"berth:local --version: {theirs}")
        self.assertEqual(theirs, mine)

    def test_berth_is_a_global_task_with_host_ports(self):
        tasks = N.tasks("lab_berth")
        self.assertEqual(len(tasks), 1)
        ports = N.docker("port", N.container_of(tasks[0]))
        self.assertIn(f"8080/tcp -> 0.0.0.0:{HTTP_PORT}", ports)
        self.assertIn(f"53/udp -> 0.0.0.0:{DNS_PORT}", ports)
        nets = N.docker("inspect", "--format", "{{json .NetworkSettings.Networks}}",
                        N.container_of(tasks[0]))
        self.assertIn(NET, nets)

    def test_tasks_answer_inside_the_overlay(self):
        want = web_hostnames()
        self.assertEqual(len(want), 3)
        got = set()
        for _, _, addr in N.task_addrs(WEB, NET).values():
            # busybox's nc: the static busybox's wget crashes here.
            out = N.docker("run", "--rm", "--network", NET, dk.IMAGE, "sh", "-c",
                           f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {addr} 80")
            got.add(out.splitlines()[-1].strip() if out else "")
        self.assertEqual(got, want)

    def test_tasks_answer_on_docker_gwbridge(self):
        got = set()
        for t in N.tasks(WEB):
            addr = N.gwbridge_addr(N.container_of(t))
            self.assertTrue(addr, f"task {t['ID']} has no docker_gwbridge address")
            rc, body = get(80, addr)
            self.assertEqual(rc, 0, f"curl {addr}:80")
            got.add(body)
        self.assertEqual(got, web_hostnames())

    def test_other_names_go_to_the_tests_upstream(self):
        # berth in the container forwards to the dnsmasq on the gwbridge's
        # gateway: the published UDP port works end to end.
        ok = u.poll_until(lambda: dns("example.test")[1] == ["192.0.2.10"], 15, 0.5)
        self.assertTrue(ok, f"example.test through berth's published port: "
                        f"{dns('example.test')}\n{berth_log()[-2000:]}")


class ThroughBerth(unittest.TestCase):
    """berth's part (the contract): fails until berth follows Swarm."""

    def test_1_all_tasks_answer_through_the_published_port(self):
        want = web_hostnames()
        addrs = sorted(a for _, _, a in N.task_addrs(WEB, NET).values())
        # berth may have started before the web tasks ran: it has the poll
        # interval (and a margin) to know them.
        ok = u.poll_until(lambda: dns("tasks.web.lab.docker")[1] == addrs, POLL_S + MARGIN_S,
                          0.25)
        self.assertTrue(ok, f"tasks.web.lab.docker {dns('tasks.web.lab.docker')}, want "
                        f"{addrs}\n{berth_log()[-2000:]}")
        seen, errors = answers(HTTP_PORT, 30)
        note(f"through berth's port {HTTP_PORT}: {sorted(set(seen))}, errors {errors}")
        self.assertEqual(errors, {}, f"curl failures\n{berth_log()[-2000:]}")
        self.assertEqual(set(seen), want)

    def test_0_follows_as_a_manager(self):
        ok = u.poll_until(lambda: re.search(r"swarm: following \d+ services, \d+ tasks as a "
                                            r"manager", berth_log()), POLL_S + MARGIN_S, 0.5)
        self.assertTrue(ok, berth_log()[-2000:])

    def test_2_dns_names(self):
        addrs = {slot: a for slot, _, a in N.task_addrs(WEB, NET).values()}
        vip = N.vip(WEB, NET)
        st, got = dns("tasks.web.lab.docker")
        self.assertEqual((st, got), ("NOERROR", sorted(addrs.values())),
                         f"tasks.web.lab.docker\n{berth_log()[-2000:]}")
        self.assertEqual(dns("web.lab.docker"), ("NOERROR", [vip]),
                         "web.lab.docker is the VIP when berth is attached")
        self.assertEqual(dns("2.web.lab.docker"), ("NOERROR", [addrs[2]]))
        self.assertEqual(dns("4.web.lab.docker")[0], "NXDOMAIN")
        note(f"web.lab.docker {vip}; tasks {sorted(addrs.values())}; 2.web.lab {addrs[2]}")

    def test_3_scale_to_5_and_back(self):
        self.addCleanup(N.scale, WEB, 3)     # even when berth did not follow
        for n in (5, 3):
            t0 = time.monotonic()
            N.scale(WEB, n)
            N.wait_tasks(WEB, n)
            t_tasks = time.monotonic() - t0
            want = web_hostnames()
            addrs = sorted(a for _, _, a in N.task_addrs(WEB, NET).values())

            def dns_ok():
                return dns("tasks.web.lab.docker") == ("NOERROR", addrs)

            def http_ok():
                seen, errors = answers(HTTP_PORT, 4 * n)
                return not errors and set(seen) == want

            limit = POLL_S + MARGIN_S
            ok_dns = u.poll_until(dns_ok, limit, 0.2)
            t_dns = time.monotonic() - t0
            ok_http = u.poll_until(http_ok, max(1.0, t0 + limit - time.monotonic()), 0.2)
            t_http = time.monotonic() - t0
            RESULTS[f"scale to {n}"] = (
                f"tasks running {t_tasks:.1f} s, DNS "
                + (f"{t_dns:.1f} s" if ok_dns else f"not within {limit:.0f} s")
                + ", all answer " + (f"{t_http:.1f} s" if ok_http else "never")
                + " after the scale")
            note(f"scale to {n}: {RESULTS[f'scale to {n}']}")
            self.assertTrue(ok_dns, f"tasks.web.lab.docker after scale to {n}: "
                            f"{dns('tasks.web.lab.docker')}, want {addrs}\n{berth_log()[-2000:]}")
            self.assertTrue(ok_http, f"after scale to {n}: {answers(HTTP_PORT, 4 * n)}, "
                            f"want {sorted(want)}")
            self.assertLess(t_dns, limit)
        log = berth_log()
        self.assertRegex(log, r"swarm: lab_web: 3 -> 5 tasks")
        self.assertRegex(log, r"swarm: lab_web: 5 -> 3 tasks")


class HostBerth(unittest.TestCase):
    """berth installed on the host (the node's namespace), outside the
    overlay: local tasks only, through docker_gwbridge, and it says so."""

    def test_reaches_local_tasks_through_gwbridge(self):
        port, dport = 18080, 15353
        gw_addrs = sorted(N.gwbridge_addr(N.container_of(t)) for t in N.tasks(WEB))
        b = u.Proc([sl.NSENTER, f"--net=/run/netns/{S.client.name}", "--", u.BERTH,
                    "--docker", N.url, "-p", f"127.0.0.1:{port}:web.lab:80",
                    "--dns", f"127.0.0.1:{dport}", "--upstream", f"{GW}:{UPSTREAM_PORT}",
                    "--log-level", "debug"])
        try:
            ok = u.poll_until(lambda: not b.alive() or dig("127.0.0.1", dport, "example.test")
                              == ("NOERROR", ["192.0.2.10"]), 15, 0.2)
            self.assertTrue(ok and b.alive(), b.log_tail())
            # The contract's words name the tasks out of reach; with none on
            # other nodes berth says only this node's are reachable.
            line = re.compile(r"swarm: not attached to overlay 'lab_net' \([0-9./]+\): "
                              r".*run berth as a global service on it")
            u.poll_until(lambda: line.search(b.stderr()), POLL_S + MARGIN_S, 0.2)
            self.assertRegex(b.stderr(), line)
            want = web_hostnames()
            ok = u.poll_until(lambda: set(answers(port, 12)[0]) == want, POLL_S, 0.2)
            seen, errors = answers(port, 30)
            note(f"host berth: {sorted(set(seen))}, errors {errors}")
            self.assertTrue(ok, b.log_tail())
            self.assertEqual(errors, {})
            self.assertEqual(dig("127.0.0.1", dport, "tasks.web.lab.docker"),
                             ("NOERROR", gw_addrs), "the host berth names the gwbridge addresses")
            # A task container's own name too (Docker's name for it): never
            # its overlay address, which this namespace cannot route to.
            for t in N.tasks(WEB):
                name = f"{WEB}.{t['Slot']}.{t['ID']}.docker"
                rcode, addrs = dig("127.0.0.1", dport, name)
                self.assertEqual(rcode, "NOERROR", name)
                self.assertEqual(addrs, [N.gwbridge_addr(N.container_of(t))], name)
            rc = b.stop()
            self.assertEqual(rc, 0, b.log_tail())
        finally:
            b.close()


if __name__ == "__main__":
    u.main_or_skip(requirements, "stack, swarm, dockerd and dnsmasq")
