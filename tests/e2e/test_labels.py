#!/usr/bin/python3
"""berth --labels against a fake Engine API (no dockerd needed), so label
publishing also runs in the sanitizer build (`ctest -LE dockerd`).

The fake (fakedocker.py) serves containers built from the recorded bodies in
tests/fixtures/docker, with berth.publish labels and loopback addresses
(127.0.0.x); the test runs the containers' "processes" there: TCP echo
servers greeting with the container's name and port, UDP echoes prefixing
replies with the same. A client on 127.0.0.1 then sees whether berth
published a label's port, to which container, and that bytes come back
intact. Containers start and stop as dockerd reports it: create/start
events, kill/die/stop events with the next list leaving the container out
and inspect saying it is not running.

Covered: TCP and UDP label ports carrying bytes; a label without HOST_IP
(every IPv4 address); port ranges; a stopped container
unpublished (refused) and published again when it starts, also across a
resync; two containers claiming one host port (the first keeps it, one
warning naming both, the second takes over when the first stops); bad label
entries warned once, not on every registry change, while the container's
other entries work; a label on a port of berth's own --publish refused with
a warning, the static mapping still serving. Every berth is stopped with
SIGTERM and must exit 0 (an ASan/LSan/UBSan report fails the test).
Traffic: loopback only.
"""

import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402
from fakedocker import FakeDocker, who  # noqa: E402

SETTLE_S = 15.0       # a change followed (berth promises one second)
RESYNC_S = 45.0       # the event stream cut: reconnect with backoff


def setUpModule():
    u.require_berth()


# ---------------------------------------------------------------- backends

class Box:
    """What runs "inside" one fake container at ip: on each of count
    consecutive ports, a TCP echo server greeting "<name> <port>\\n" and a
    UDP echo replying "<name> <port>|" + datagram. Ports are common to all
    boxes made together (containers of one image listen on the same
    ports)."""

    def __init__(self, name, ip, base, count):
        self.name, self.ip = name, ip
        self.servers = []
        try:
            for p in range(base, base + count):
                self.servers.append(u.EchoServer(host=ip, port=p,
                                                 greet=self.greet(p).encode() + b"\n"))
                self.servers.append(u.UdpEcho(host=ip, port=p, tag=self.tag(p)))
        except OSError:
            self.close()
            raise

    def greet(self, port):
        return f"{self.name} {port}"

    def tag(self, port):
        return f"{self.name} {port}|".encode()

    def close(self):
        for s in self.servers:
            s.close()
        self.servers = []


def boxes(specs, count=1):
    """specs: (name, ip). Returns (base container port, {name: Box})."""
    for _ in range(30):
        base = u.free_ports(count)
        made = {}
        try:
            for name, ip in specs:
                made[name] = Box(name, ip, base, count)
            return base, made
        except OSError:
            for b in made.values():
                b.close()
    raise RuntimeError("no common free ports for the backends")


# ---------------------------------------------------------------- clients

def tcp_flow(port, greet, total=1 << 20, seed=7, host="127.0.0.1"):
    """Connects, expects greet, then echoes total bytes in 64 KiB steps.
    Returns None when every byte came back, else what went wrong."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.settimeout(u.IO_TIMEOUT)
            s.connect((host, port))
            want = greet.encode() + b"\n"
            got = u.recv_exact(s, len(want))
            if got != want:
                return f"greeting {got!r}, expected {want!r}"
            done = 0
            for c in u.Pattern(seed).chunks(total):
                for i in range(0, len(c), 65536):
                    piece = bytes(c[i:i + 65536])
                    s.sendall(piece)
                    back = u.recv_exact(s, len(piece))
                    if back != piece:
                        return (f"echo differs after {done} bytes "
                                f"({len(back)} of {len(piece)} back)")
                    done += len(piece)
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    return None


def udp_ask(port, data, timeout=0.5, host="127.0.0.1"):
    """One datagram from a fresh connected socket: the reply, "refused"
    (ICMP port unreachable: nothing bound) or None (no answer)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        try:
            s.send(data)
            return s.recv(70000)
        except ConnectionRefusedError:
            return "refused"
        except socket.timeout:
            return None


def who_at(host, port, timeout=3.0):
    """who() for any loopback address (IPv6 too)."""
    if host == "127.0.0.1":
        return who(port, timeout)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect((host, port))
            data = s.recv(100)
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return f"error: {e}"
    return data.decode("utf-8", "replace").strip() if data else "closed"


def host_has_ipv6():
    """As berth decides it: /proc/net/if_inet6 lists an address."""
    try:
        with open("/proc/net/if_inet6") as f:
            return bool(f.read(1))
    except OSError:
        return False


def port_re(port):
    """A host port inside a log line: ':PORT' not followed by a digit."""
    return rf":{port}(?!\d)"


# ---------------------------------------------------------------- the cases

class LabelCase(unittest.TestCase):
    """A fake engine; berth --labels on it, started by start_berth()."""

    def setUp(self):
        self.fake = FakeDocker()
        self.addCleanup(self.fake.close)
        self.berth = None
        self.probe = None

    def boxes(self, specs, count=1):
        base, made = boxes(specs, count)
        for b in made.values():
            self.addCleanup(b.close)
        return base, made

    def start_berth(self, *extra, wait=()):
        args = ["--docker", self.fake.url, "--labels", "--log-level", "debug"] + list(extra)
        self.berth = u.Berth(args, docker=True)
        self.addCleanup(self.berth.close)
        self.addCleanup(self.stop_berth_cleanly)
        if wait:
            self.berth.wait_bound(wait)

    def stop_berth_cleanly(self):
        """SIGTERM: exit 0, and no sanitizer report (LeakSanitizer runs at
        exit; with abort_on_error it also changes the exit code). A berth
        that already exited on its own fails here too."""
        if not self.berth:
            return
        rc = self.berth.stop()
        err = self.berth.stderr()
        bad = [l for l in err.splitlines()
               if "Sanitizer" in l or "runtime error:" in l]
        self.check(rc == 0 and not bad, f"berth exited with {rc} on SIGTERM; "
                   f"sanitizer lines: {bad[:5]}")

    # ---- the fake containers' lives, as dockerd reports them

    def run_ct(self, name, ip, publish, **more):
        labels = {"berth.publish": publish, **more}
        cid = self.fake.add(name, ip, labels=labels)
        self.fake.send(self.fake.event("create", name), self.fake.event("start", name))
        return cid

    def stop_ct(self, name):
        self.fake.stop_container(name)
        self.fake.send(self.fake.event("kill", name), self.fake.event("die", name),
                       self.fake.event("stop", name))

    def restart_ct(self, name):
        self.fake.start_container(name)
        self.fake.send(self.fake.event("start", name))

    # ---- checks

    def log(self, n=40):
        return self.berth.log_tail(n) if self.berth else "(no berth)"

    def check(self, cond, msg):
        if not cond:
            self.fail(f"{msg}\n{self.log()}")

    def expect(self, probe, want, what, timeout=SETTLE_S):
        """Polls probe() until it returns want; returns the seconds taken."""
        seen = []

        def pred():
            got = probe()
            seen.append(got)
            return got == want
        t0 = time.monotonic()
        ok = u.poll_until(pred, timeout, 0.05)
        self.check(ok, f"{what}: never {want!r} within {timeout:.0f} s "
                   f"(last seen: {seen[-3:]})")
        return time.monotonic() - t0

    def expect_tcp(self, port, want, what, host="127.0.0.1", timeout=SETTLE_S):
        return self.expect(lambda: who_at(host, port), want, f"{what} (tcp {host} {port})",
                           timeout)

    def expect_udp(self, port, tag, what, host="127.0.0.1", timeout=SETTLE_S):
        data = b"ping-%d" % port
        want = tag + data if tag is not None else "refused"
        return self.expect(lambda: udp_ask(port, data, 0.3, host), want,
                           f"{what} (udp {host} {port})", timeout)

    def flows(self, port, greet, what, host="127.0.0.1"):
        err = tcp_flow(port, greet, host=host)
        self.check(err is None, f"{what}: 1 MiB echo through tcp {host} {port}: {err}")

    def udp_flows(self, port, tag, what, host="127.0.0.1"):
        """Datagram sizes 0 to 60000 each come back whole, with tag."""
        with u.udp_socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            for n in (0, 1, 1400, 9000, 60000):
                data = bytes((i * 31 + n) & 0xFF for i in range(n))
                got = self.udp_reply(s, data, tag, (host, port))
                self.check(got == tag + data, f"{what}: a {n}-byte datagram through udp "
                           f"{host} {port} came back as {len(got or b'')} bytes "
                           f"{(got or b'')[:40]!r}")

    @staticmethod
    def udp_reply(s, data, tag, addr, attempts=3):
        for _ in range(attempts):      # UDP may drop on a loaded machine
            s.sendto(data, addr)
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                try:
                    r, _ = s.recvfrom(70000)
                except socket.timeout:
                    break
                if r == tag + data:
                    return r
        return None

    def berth_holds(self, proto, port):
        """How many sockets of berth listen (TCP) / are bound (UDP) on port."""
        return len(u.listening_inodes(proto, port) & u.socket_inodes(self.berth.pid))

    def lines(self, *patterns, levels=r"warn|error"):
        """berth's log lines at those levels matching every pattern."""
        rxs = [re.compile(p) for p in patterns]
        lv = re.compile(rf"berth ({levels}):")
        return [l for l in self.berth.stderr().splitlines()
                if lv.search(l) and all(r.search(l) for r in rxs)]

    def expect_warning(self, what, *patterns):
        got = u.poll_until(lambda: self.lines(*patterns), SETTLE_S, 0.05)
        self.check(got, f"{what}: no warning matching {patterns} within {SETTLE_S:.0f} s")
        sys.stderr.write(f"    warned: {got[0].split('berth ', 1)[-1]}\n")
        return got

    def churn(self, rounds=2):
        """Registry changes that certainly reached the label code: a probe
        container with a label of its own starts (its port answers) and
        stops (its port refuses), rounds times."""
        if not self.probe:
            base, bx = self.boxes([("probe", "127.0.0.99")])
            self.probe = (u.free_port(), base, bx["probe"])
        port, cport, box = self.probe
        for i in range(rounds):
            if i == 0 and "probe" not in self.fake.containers:
                self.run_ct("probe", "127.0.0.99", f"127.0.0.1:{port}:{cport}")
            else:
                self.restart_ct("probe")
            self.expect_tcp(port, box.greet(cport), f"churn {i}: probe published")
            self.stop_ct("probe")
            self.expect_tcp(port, "refused", f"churn {i}: probe unpublished")


class Publish(LabelCase):
    def test_tcp_and_udp_ports_carry_bytes(self):
        cp, bx = self.boxes([("web", "127.0.0.2")])
        web = bx["web"]
        p, q = u.free_port(), u.free_port()
        self.fake.add("web", "127.0.0.2", labels={
            "berth.publish": f"127.0.0.1:{p}:{cp},127.0.0.1:{q}:{cp}/udp",
            "com.docker.compose.project": "lab", "com.docker.compose.service": "web"})
        self.start_berth()
        secs = self.expect_tcp(p, web.greet(cp), "label tcp port of a running container")
        sys.stderr.write(f"    published {secs:.2f} s after berth started\n")
        self.flows(p, web.greet(cp), "label tcp port")
        self.expect_udp(q, web.tag(cp), "label udp port")
        self.udp_flows(q, web.tag(cp), "label udp port")
        self.check(self.lines("publish", port_re(p), "'web'", levels="info"),
                   f"no info line saying {p} was published for 'web'")
        # Each label entry is one socket, on the address it names.
        self.check(self.berth_holds("tcp", p) == 1 and self.berth_holds("udp", q) == 1,
                   f"berth should hold one tcp socket on {p} and one udp socket on {q}")
        self.check(not self.berth_holds("udp", p) and not self.berth_holds("tcp", q),
                   "a /udp entry published tcp or the other way round")

    def test_no_host_ip_is_every_address(self):
        cp, bx = self.boxes([("any", "127.0.0.3")])
        box = bx["any"]
        p, q = u.free_port(), u.free_port()
        self.fake.add("any", "127.0.0.3",
                      labels={"berth.publish": f"{p}:{cp},{q}:{cp}/udp"})
        self.start_berth()
        # Every address of both families, as docker run -p: 0.0.0.0 and,
        # when the host has IPv6, [::] (one socket each).
        v6 = host_has_ipv6()
        hosts = ["127.0.0.1", "127.0.0.5"] + (["::1"] if v6 else [])
        for h in hosts:
            self.expect_tcp(p, box.greet(cp), "label without HOST_IP", host=h)
            self.expect_udp(q, box.tag(cp), "label without HOST_IP", host=h)
        self.flows(p, box.greet(cp), "label without HOST_IP", host=hosts[-1])
        self.udp_flows(q, box.tag(cp), "label without HOST_IP", host=hosts[-1])
        want = 2 if v6 else 1
        self.check(self.berth_holds("tcp", p) == want and self.berth_holds("udp", q) == want,
                   f"berth should hold {want} tcp socket(s) on {p} and udp on {q}")
        if v6:
            self.check(self.lines(rf"published \[::\]{port_re(p)}->", levels="info"),
                       f"no info line saying [::]:{p} was published")

    def test_ranges(self):
        cp, bx = self.boxes([("rng", "127.0.0.4")], count=3)
        box = bx["rng"]
        p, q = u.free_ports(3), u.free_ports(2)
        self.fake.add("rng", "127.0.0.4", labels={
            "berth.publish": f"127.0.0.1:{p}-{p + 2}:{cp}-{cp + 2},"
                             f"127.0.0.1:{q}-{q + 1}:{cp + 1}-{cp + 2}/udp"})
        self.start_berth()
        for k in range(3):
            self.expect_tcp(p + k, box.greet(cp + k), f"tcp range, port {k}")
        for k in range(2):
            self.expect_udp(q + k, box.tag(cp + 1 + k), f"udp range, port {k}")
        self.flows(p + 2, box.greet(cp + 2), "last port of the tcp range")
        self.udp_flows(q, box.tag(cp + 1), "first port of the udp range")
        self.check(not self.berth_holds("tcp", p + 3) and not self.berth_holds("udp", q + 2),
                   "berth bound past the end of a range")


class Lifecycle(LabelCase):
    def test_stop_unpublishes_start_publishes_again(self):
        cp, bx = self.boxes([("svc", "127.0.0.6")])
        svc = bx["svc"]
        p, q = u.free_port(), u.free_port()
        self.start_berth()
        # Started after berth: the start event publishes it.
        self.run_ct("svc", "127.0.0.6", f"127.0.0.1:{p}:{cp},127.0.0.1:{q}:{cp}/udp")
        secs = self.expect_tcp(p, svc.greet(cp), "container started")
        sys.stderr.write(f"    published {secs:.2f} s after the start event\n")
        self.expect_udp(q, svc.tag(cp), "container started")
        # docker stop: kill, die, stop; inspect says exited, the list omits it.
        self.stop_ct("svc")
        secs = self.expect_tcp(p, "refused", "container stopped: tcp port unpublished")
        sys.stderr.write(f"    unpublished {secs:.2f} s after the die event\n")
        self.expect(lambda: self.berth_holds("udp", q), 0, "udp port unpublished")
        self.expect_udp(q, None, "container stopped: nothing bound on the udp port")
        self.check(self.lines("unpublish", port_re(p), "'svc'", levels="info"),
                   f"no info line saying {p} of 'svc' was unpublished")
        # A resync (the event stream ends; berth lists again) does not bring
        # it back: the list leaves the stopped container out.
        def syncs():
            return len(self.lines(r"synced \d+ running", levels="info"))
        lists, synced, opened = len(self.fake.paths("list")), syncs(), self.fake.streams_opened
        self.check(self.fake.send("end"), "no live event stream")
        self.expect(lambda: len(self.fake.paths("list")) > lists, True,
                    "a new list after the event stream ended", RESYNC_S)
        self.expect(lambda: syncs() > synced, True, "resync finished", RESYNC_S)
        self.check(who(p) == "refused" and not self.berth_holds("udp", q),
                   "a stopped container was published again by the resync")
        # docker start: published again, bytes flow.
        self.check(self.fake.wait_stream(opened), "no new event stream after the resync")
        self.restart_ct("svc")
        self.expect_tcp(p, svc.greet(cp), "container started again", timeout=RESYNC_S)
        self.flows(p, svc.greet(cp), "started again")
        self.expect_udp(q, svc.tag(cp), "container started again")

    def test_removed_container_unpublishes(self):
        cp, bx = self.boxes([("tmp", "127.0.0.7")])
        p = u.free_port()
        self.fake.add("tmp", "127.0.0.7", labels={"berth.publish": f"127.0.0.1:{p}:{cp}"})
        self.start_berth()
        self.expect_tcp(p, bx["tmp"].greet(cp), "running at start")
        # docker rm -f: gone from list and inspect (404).
        self.fake.remove("tmp")
        self.fake.send(self.fake.event("kill", "tmp"), self.fake.event("die", "tmp"),
                       self.fake.event("destroy", "tmp"))
        self.expect_tcp(p, "refused", "container removed")
        self.churn(1)
        self.check(who(p) == "refused", "a removed container's port came back")


class Conflict(LabelCase):
    def test_first_keeps_port_second_takes_over(self):
        cp, bx = self.boxes([("claim-first", "127.0.0.10"), ("claim-second", "127.0.0.11")])
        first, second = bx["claim-first"], bx["claim-second"]
        p, q, r = u.free_port(), u.free_port(), u.free_port()
        claim = f"127.0.0.1:{p}:{cp},127.0.0.1:{q}:{cp}/udp"
        self.start_berth()
        self.run_ct("claim-first", "127.0.0.10", claim)
        self.expect_tcp(p, first.greet(cp), "first claimant")
        self.expect_udp(q, first.tag(cp), "first claimant")
        # The second claims the same ports, and one of its own.
        self.run_ct("claim-second", "127.0.0.11", claim + f",127.0.0.1:{r}:{cp}")
        self.expect_tcp(r, second.greet(cp), "the second claimant's own port")
        for port in (p, q):
            self.expect_warning(f"conflict on {port}", "'claim-first'", "'claim-second'",
                                port_re(port))
        seen = {who(p) for _ in range(10)}
        self.check(seen == {first.greet(cp)}, f"port {p} served {seen}: the first "
                   "claimant should keep it")
        self.udp_flows(q, first.tag(cp), "first claimant keeps the udp port")
        self.check(self.berth_holds("tcp", p) == 1 and self.berth_holds("udp", q) == 1,
                   "berth should hold exactly one socket on each claimed port")
        # Later registry changes do not repeat the warning.
        self.churn(2)
        for port in (p, q):
            n = len(self.lines("'claim-first'", "'claim-second'", port_re(port)))
            self.check(n == 1, f"the conflict on {port} was logged {n} times, not once")
        # The first stops: the second gets the ports.
        self.stop_ct("claim-first")
        secs = self.expect_tcp(p, second.greet(cp), "first claimant stopped")
        sys.stderr.write(f"    second claimant took over in {secs:.2f} s\n")
        self.expect_udp(q, second.tag(cp), "first claimant stopped")
        self.flows(p, second.greet(cp), "after the takeover")
        self.udp_flows(q, second.tag(cp), "after the takeover")
        self.check(who(r) == second.greet(cp), "the second claimant's own port was lost")
        # The holder keeps them when the first comes back, and this new
        # conflict is warned about.
        self.restart_ct("claim-first")
        both = ("'claim-first'", "'claim-second'", port_re(p))
        self.expect(lambda: len(self.lines(*both)), 2,
                    f"the first is back: a second conflict warning on {p}")
        seen = {who(p) for _ in range(10)}
        self.check(seen == {second.greet(cp)}, f"port {p} served {seen} after the first "
                   "came back: the holder should keep it")


class BadLabel(LabelCase):
    def test_warned_once_other_entries_work(self):
        cp, bx = self.boxes([("mixed", "127.0.0.12")])
        box = bx["mixed"]
        p, q, x = u.free_port(), u.free_port(), u.free_port()
        bad = ["127.0.0.1:notaport:80", "justgarbage", f"127.0.0.1:{x}-{x + 1}:{cp}"]
        label = ",".join([f"127.0.0.1:{p}:{cp}", bad[0], f"127.0.0.1:{q}:{cp}/udp",
                          bad[1], bad[2]])
        self.fake.add("mixed", "127.0.0.12", labels={"berth.publish": label})
        self.start_berth()
        self.expect_tcp(p, box.greet(cp), "good tcp entry beside bad ones")
        self.expect_udp(q, box.tag(cp), "good udp entry beside bad ones")
        for b in bad:
            self.expect_warning(f"bad entry {b!r}", "'mixed'", re.escape(b))
        self.check(not self.berth_holds("tcp", x) and not self.berth_holds("tcp", x + 1),
                   f"the bad range entry bound something on {x}")

        def counts():
            return [len(self.lines("'mixed'", re.escape(b))) for b in bad]
        # The good entries answering means the first sync is over, and
        # everything it logged is in the log.
        first = counts()
        self.churn(2)
        total = counts()
        self.check(first == [1] * len(bad) and total == first,
                   f"each bad entry should be warned once: warnings per entry {bad} "
                   f"were {first} after the first sync and {total} after four more "
                   "registry changes")
        self.flows(p, box.greet(cp), "good tcp entry after the churn")
        self.udp_flows(q, box.tag(cp), "good udp entry after the churn")


    def test_repeated_entry_warned_once(self):
        """The same bad entry twice in one label, and an entry without
        HOST_IP whose IPv4 and IPv6 ports are both refused (they collide
        with the plan's): one warning each, not one per copy or family."""
        cp, bx = self.boxes([("twice", "127.0.0.15"), ("holder", "127.0.0.16")])
        box = bx["twice"]
        p, s = u.free_port(hosts=("0.0.0.0", "::")), u.free_port(hosts=("0.0.0.0", "::"))
        self.fake.add("twice", "127.0.0.15", labels={
            "berth.publish": f"127.0.0.1:{p}:{cp},junk-entry,{s}:{cp},junk-entry"})
        # The plan holds s on every address of both families.
        self.start_berth("-p", f"{s}:127.0.0.16:{cp}", wait=[("tcp", s)])
        self.expect_tcp(p, box.greet(cp), "the good entry")
        self.expect_warning("bad entry", "'twice'", "junk-entry")
        self.expect_warning("entry on a static port", "'twice'", port_re(s))
        self.churn(2)
        junk = self.lines("'twice'", "junk-entry")
        static = self.lines("'twice'", port_re(s))
        self.check(len(junk) == 1, f"a bad entry given twice was warned {len(junk)} times")
        self.check(len(static) == 1,
                   f"an entry refused on both families was warned {len(static)} times: "
                   f"{static}")
        if host_has_ipv6():
            self.check("and 1 more of berth.publish" in static[0], static[0])
        self.check(who(s) == bx["holder"].greet(cp), "the static port changed hands")


def echo_first_line(conn, _srv):
    """A backend's handler: answers with the first line it reads, which is
    what berth sent before the client's bytes."""
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    conn.sendall(data.split(b"\n", 1)[0] + b"\n")


def first_line(port, send=b"hello\n"):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
            c.sendall(send)
            data = b""
            while not data.endswith(b"\n"):
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.decode(errors="replace").strip()
    except OSError:
        return "refused"


class ClientAddressLabels(LabelCase):
    def test_proxy_protocol_label(self):
        """berth.proxy-protocol=v1 beside berth.publish: the container's
        TCP port gets a PROXY header naming the client first; the UDP entry
        of the same label is published without it."""
        be = u.ThreadServer(echo_first_line, host="127.0.0.31")
        self.addCleanup(be.close)
        p, q = u.free_port(), u.free_port()
        self.fake.add("pp", "127.0.0.31", labels={
            "berth.publish": f"127.0.0.1:{p}:{be.port},127.0.0.1:{q}:{be.port}/udp",
            "berth.proxy-protocol": "v1"})
        self.start_berth()
        got = self.expect(lambda: first_line(p).startswith("PROXY TCP4 "), True,
                          "PROXY v1 header first on the label's tcp port")
        line = first_line(p)
        fields = line.split()
        self.check(fields[:4] == ["PROXY", "TCP4", "127.0.0.1", "127.0.0.1"] and
                   fields[5] == str(p), f"header {line!r}: want PROXY TCP4 "
                   f"127.0.0.1 127.0.0.1 <client port> {p}")
        sys.stderr.write(f"    the backend read first: {line!r} ({got:.2f} s)\n")
        self.check(self.lines(port_re(p), "'pp'", r"\(proxy-protocol v1\)", levels="info"),
                   "no info line saying the port was published with the PROXY protocol")
        self.check(self.lines(port_re(q), "'pp'", levels="info") and
                   not self.lines(port_re(q), "proxy-protocol", levels="info"),
                   "the udp entry should be published, without the PROXY protocol")

    def test_bad_switch_warned_port_still_published(self):
        """A bad berth.transparent value is one warning naming the container
        and the value; its ports still publish, without the switch."""
        cp, bx = self.boxes([("bt", "127.0.0.32")])
        box = bx["bt"]
        p = u.free_port()
        self.fake.add("bt", "127.0.0.32", labels={
            "berth.publish": f"127.0.0.1:{p}:{cp}", "berth.transparent": "maybe"})
        self.start_berth()
        self.expect_tcp(p, box.greet(cp), "the port of a container with a bad switch")
        self.expect_warning("bad berth.transparent", "'bt'", "berth.transparent 'maybe'")
        self.churn(1)
        self.check(len(self.lines("'bt'", "berth.transparent")) == 1,
                   "the bad switch should be warned once")


class StaticCollision(LabelCase):
    # berth's own --publish plan wins over a label: the label entry is
    # refused with a warning naming the container and the port, the static
    # mapping keeps its one socket and keeps serving, and the container's
    # other entries are published.
    def test_label_on_a_static_port_is_refused(self):
        cp, bx = self.boxes([("static", "127.0.0.13"), ("squatter", "127.0.0.14")])
        static, squat = bx["static"], bx["squatter"]
        s, su, r = u.free_port(), u.free_port(), u.free_port()
        self.fake.add("squatter", "127.0.0.14", labels={
            "berth.publish": f"127.0.0.1:{s}:{cp},127.0.0.1:{su}:{cp}/udp,"
                             f"127.0.0.1:{r}:{cp}"})
        self.start_berth("-p", f"127.0.0.1:{s}:127.0.0.13:{cp}",
                         "-p", f"127.0.0.1:{su}:127.0.0.13:{cp}/udp",
                         wait=[("tcp", s), ("udp", su)])
        self.expect_tcp(r, squat.greet(cp), "the squatter's other entry")
        for port in (s, su):
            self.expect_warning(f"label on static port {port}", "'squatter'", port_re(port))
        seen = {who(s) for _ in range(10)}
        self.check(seen == {static.greet(cp)}, f"static port {s} served {seen}")
        self.flows(s, static.greet(cp), "static tcp port beside a colliding label")
        self.udp_flows(su, static.tag(cp), "static udp port beside a colliding label")
        self.check(self.berth_holds("tcp", s) == 1 and self.berth_holds("udp", su) == 1,
                   "berth should hold exactly one socket on each static port")
        self.churn(2)
        for port in (s, su):
            n = len(self.lines("'squatter'", port_re(port)))
            self.check(n == 1, f"the collision on {port} was warned {n} times, not once")
        # The label's container stops: the static mapping is untouched.
        self.stop_ct("squatter")
        self.expect_tcp(r, "refused", "squatter stopped")
        self.flows(s, static.greet(cp), "static tcp port after the squatter stopped")
        self.udp_flows(su, static.tag(cp), "static udp port after the squatter stopped")


if __name__ == "__main__":
    u.main()
