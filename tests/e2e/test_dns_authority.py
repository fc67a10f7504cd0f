#!/usr/bin/python3
"""berth's zone against a reference authoritative server: the same queries
to berth and to NSD (Debian's nsd, run as a child on a loopback port with a
config and zone files of this test's own) serving the same names, compared
section by section. The names come from containers of the fake Engine API
(fakedocker.py), so no dockerd is needed and the test runs in the sanitizer
build too; the zone files for NSD are generated from the same containers,
by the naming rules README's DNS section documents.

Also checked here, against berth alone: names in the zone, reverse names of
containers and other classes never go upstream (the upstream is a socket
of this test's that records what it gets, and must get nothing).

Accepted differences, applied in normalize() and compare() and nowhere
else:
  RA      berth sets it (it resolves names outside its zone), NSD never.
  serial  berth's SOA serial is its table's version; NSD's the zone file's.
          Every other SOA field is compared.
  order   berth rotates addresses: records are compared as sets.
  ANY     NSD answers one RRset (RFC 8482), berth every one it has: NSD's
          answer must be part of berth's, and berth's must hold all of the
          name's records in the zone (checked against the zone's data).
  glue    berth adds ns.<zone>'s address as additional data to every answer
          holding its NS record (it is that server); NSD adds none from
          another zone (a reverse name's NS) nor to ANY, which it answers
          with the SOA alone. Only that record may be extra.
  class ANY, negative: berth gives the zone's SOA, NSD no authority
          record. berth's is the IN SOA a resolver can cache the negative
          answer by.
  FORMERR berth's carries OPT when the query had one (RFC 6891 section 7);
          NSD 4.6's never does. Only the rcode is compared, and berth's OPT
          checked.
Not compared, because berth is a forwarder there and NSD is not: names
outside both zones, reverse names of addresses no container has.
"""
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402
from dnsmsg import (AA, CLASS_ANY, CLASS_CH, FORMERR, NXDOMAIN, T_A, T_AAAA,  # noqa: E402
                    T_ANY, T_MX, T_NS, T_OPT, T_PTR, T_SOA, T_TXT, TC, opt_record, parse,
                    query, udp_ask)
from fakedocker import FakeDocker  # noqa: E402

NSD = shutil.which("nsd") or ("/usr/sbin/nsd" if os.path.exists("/usr/sbin/nsd") else None)
TTL = 5
TYPES = (T_A, T_AAAA, T_NS, T_SOA, T_PTR, T_TXT, T_MX, T_ANY)

# name -> {network: (ip, aliases)}, labels
CONTAINERS = {
    "web": ({"mynet": ("127.0.0.2", ["db.internal", "web"])}, {}),
    "dot.name": ({"bridge": ("127.0.0.3", None)}, {}),
    "Cache": ({"bridge": ("127.0.0.4", None), "mynet": ("127.0.0.5", ["kv"])}, {}),
}
for _n in (1, 2, 3):
    CONTAINERS["lab_api_%d" % _n] = (
        {"lab_default": ("127.0.0.%d" % (10 + _n), ["api"])},
        {"com.docker.compose.project": "lab", "com.docker.compose.service": "api",
         "com.docker.compose.container-number": str(_n),
         "com.docker.compose.oneoff": "False"})


def setUpModule():
    u.require_berth()
    if not NSD:
        raise unittest.SkipTest("nsd not installed (scripts/deps test)")


def zone_data(ids):
    """{name: {(type, data)}} of the zone "docker" (names relative, lower
    case) and {address: container name} for the reverse names, by
    registry.h's readings of each container."""
    names = {}

    def add(name, ip):
        names.setdefault(name.lower(), set()).add((T_A, ip))

    for cname, (nets, labels) in CONTAINERS.items():
        for net, (ip, aliases) in nets.items():
            add(cname, ip)
            add(ids[cname][:12], ip)
            add(cname + "." + net, ip)
            for a in aliases or []:
                add(a + "." + net, ip)
            if labels:
                svc = labels["com.docker.compose.service"]
                proj = labels["com.docker.compose.project"]
                add(svc + "." + proj, ip)
                add(labels["com.docker.compose.container-number"] + "." + svc + "." + proj,
                    ip)
    names["ns"] = {(T_A, "127.0.0.1")}
    ptr = {ip: cname.lower() for cname, (nets, _) in CONTAINERS.items()
           for ip, _ in nets.values()}
    return names, ptr


def ents(names):
    """Every proper suffix of a name that is no name itself."""
    out = set()
    for n in names:
        labels = n.split(".")
        for i in range(1, len(labels)):
            out.add(".".join(labels[i:]))
    return out - set(names)


def rev_name(ip):
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa"


SOA = "@ SOA ns.docker. hostmaster.docker. 1 3600 600 86400 %d\n@ NS ns.docker.\n" % TTL


class Nsd(u.Proc):
    """nsd -d on 127.0.0.1:port serving "docker" and one zone per
    container address's reverse name, everything under dir."""

    def __init__(self, d, names, ptr):
        self.port = u.free_port(("127.0.0.1",))
        zones = [("docker", "docker.zone")]
        with open(os.path.join(d, "docker.zone"), "w") as f:
            f.write("$ORIGIN docker.\n$TTL %d\n" % TTL + SOA)
            for n, rrs in sorted(names.items()):
                for t, ip in sorted(rrs):
                    f.write("%s %s %s\n" % (n, "A" if t == T_A else "AAAA", ip))
        for ip, cname in ptr.items():
            z = rev_name(ip)
            zones.append((z, z + ".zone"))
            with open(os.path.join(d, z + ".zone"), "w") as f:
                f.write("$ORIGIN %s.\n$TTL %d\n" % (z, TTL) + SOA +
                        "@ PTR %s.docker.\n" % cname)
        conf = os.path.join(d, "nsd.conf")
        with open(conf, "w") as f:
            f.write(f"""server:
  ip-address: 127.0.0.1@{self.port}
  username: ""
  chroot: ""
  zonesdir: "{d}"
  database: ""
  pidfile: "{d}/nsd.pid"
  xfrdfile: "{d}/xfrd.state"
  zonelistfile: "{d}/zone.list"
  logfile: "{d}/nsd.log"
  hide-version: yes
  minimal-responses: yes
  server-count: 1
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
""")
            for name, file in zones:
                f.write('zone:\n  name: "%s"\n  zonefile: "%s"\n' % (name, file))
        super().__init__([NSD, "-d", "-c", conf])
        if not u.poll_until(lambda: not self.alive() or self._answers(), 20, 0.1) \
                or not self.alive():
            log = open(os.path.join(d, "nsd.log")).read() if os.path.exists(
                os.path.join(d, "nsd.log")) else ""
            self.close()
            raise AssertionError("nsd did not start: " + log)

    def _answers(self):
        try:
            return parse(udp_ask(self.port, query("docker", T_SOA), timeout=0.3))["an"] == 1
        except (OSError, ValueError):
            return False


class Sink:
    """The upstream berth is given: a UDP socket that records every
    datagram, so a test can say nothing was forwarded."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.got = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                self.got.append(self.sock.recv(65535))
            except socket.timeout:
                continue
            except OSError:
                return

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


def normalize(m):
    """A reply as comparable data, with the accepted differences taken out:
    RA and record order ignored, SOA serials blanked, OPT kept as a flag."""
    def rr(r):
        data = r["data"]
        if r["type"] == T_SOA:
            data = data[:2] + (None,) + data[3:]
        if isinstance(data, str):
            data = data.lower()
        return (r["name"].lower(), r["type"], r["class"], r["ttl"], data)

    return {
        "rcode": m["rcode"], "aa": bool(m["flags"] & AA), "tc": bool(m["flags"] & TC),
        "question": m["question"],
        "answer": sorted(map(rr, m["answer"]), key=repr),
        "authority": sorted(map(rr, m["authority"]), key=repr),
        "additional": sorted((rr(r) for r in m["additional"] if r["type"] != T_OPT),
                             key=repr),
        "opt": any(r["type"] == T_OPT for r in m["additional"]),
    }


class Differential(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        root = os.environ.get("BERTH_TEST_ROOT", "/tmp")
        cls.dir = tempfile.mkdtemp(prefix="berth-dns-authority.", dir=root)
        cls.fake = FakeDocker()
        ids = {n: cls.fake.add(n, None, networks=nets, labels=labels)
               for n, (nets, labels) in CONTAINERS.items()}
        cls.names, cls.ptr = zone_data(ids)
        cls.nsd = cls.sink = cls.berth = None
        try:
            cls.nsd = Nsd(cls.dir, cls.names, cls.ptr)
            cls.sink = Sink()
            cls.port = u.free_port(("127.0.0.1",))
            cls.berth = u.Berth(["--docker", cls.fake.url, "--dns",
                                 "127.0.0.1:%d" % cls.port, "--upstream",
                                 "127.0.0.1:%d" % cls.sink.port], docker=True)
            cls.berth.wait_bound([("udp", cls.port)])
            ok = u.poll_until(lambda: cls._synced(), 20, 0.1, "berth synced")
            assert ok, "berth never answered 3.api.lab.docker: " + cls.berth.stderr()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _synced(cls):
        try:
            m = parse(udp_ask(cls.port, query("3.api.lab.docker"), timeout=0.3))
            return m["an"] == 1
        except (OSError, ValueError):
            return False

    @classmethod
    def tearDownClass(cls):
        # SIGTERM, exit 0 and no sanitizer report: an ASan build's leak
        # check covers this berth too.
        rc, err = (cls.berth.stop(), cls.berth.stderr()) if cls.berth else (0, "")
        for p in (cls.berth, cls.nsd):
            if p:
                p.close()
        if cls.sink:
            cls.sink.close()
        cls.fake.close()
        shutil.rmtree(cls.dir, ignore_errors=True)
        if rc != 0 or "Sanitizer" in err:
            raise AssertionError(f"berth stopped with {rc}; stderr:\n{err}")

    def ask_both(self, msg):
        qid = random.randrange(1, 0xFFFF)
        msg = qid.to_bytes(2, "big") + msg[2:]
        b, n = udp_ask(self.port, msg, timeout=5), udp_ask(self.nsd.port, msg, timeout=5)
        return parse(b), parse(n)

    def compare(self, what, msg, rel):
        """Asks both; returns a list of differences not accepted."""
        bm, nm = self.ask_both(msg)
        b, n = normalize(bm), normalize(nm)
        qtype, qclass = bm["question"][0][1:] if bm["question"] else (None, None)
        diffs = []
        if n["rcode"] == FORMERR:
            if b["rcode"] != FORMERR or not b["opt"]:
                diffs.append("%s: berth rcode %d, OPT %s; nsd FORMERR" % (what, b["rcode"],
                                                                         b["opt"]))
            return diffs
        if qclass == CLASS_ANY and n["rcode"] == NXDOMAIN and not n["authority"]:
            n["authority"] = [r for r in b["authority"] if r[1] == T_SOA]
        for k in ("rcode", "aa", "tc", "question", "authority", "opt"):
            if b[k] != n[k]:
                diffs.append("%s %s: berth %r, nsd %r" % (what, k, b[k], n[k]))
        if qtype == T_ANY:
            if not set(n["answer"]) <= set(b["answer"]):
                diffs.append("%s ANY: nsd's %r not in berth's %r" % (what, n["answer"],
                                                                     b["answer"]))
            want = {(t, d) for t, d in self.names.get(rel, ())}
            got = {(r[1], r[4]) for r in b["answer"] if r[1] in (T_A, T_AAAA)}
            if rel is not None and got != want:
                diffs.append("%s ANY: berth's addresses %r, zone %r" % (what, got, want))
        elif b["answer"] != n["answer"]:
            diffs.append("%s answer: berth %r, nsd %r" % (what, b["answer"], n["answer"]))
        extra = set(b["additional"]) - set(n["additional"])
        glue = ("ns.docker.", T_A, 1, TTL, "127.0.0.1")
        has_ns = any(r[1] == T_NS for r in b["answer"])
        if not set(n["additional"]) <= set(b["additional"]) or \
                (extra and not (has_ns and extra == {glue})):
            diffs.append("%s additional: berth %r, nsd %r" % (what, b["additional"],
                                                             n["additional"]))
        return diffs

    def test_zone_and_reverse_names_agree(self):
        names = set(self.names) | ents(self.names)
        asked = [(n + ".docker", n) for n in sorted(names)]
        asked += [("docker", None), ("DoCkEr", None), ("WEB.Docker", "web"),
                  ("Db.Internal.MyNet.docker", "db.internal.mynet"),
                  ("INTERNAL.mynet.docker", "internal.mynet")]
        asked += [(n + ".docker", n) for n in ("nothere", "x.web", "zz.mynet",
                                               "x.internal.mynet", "ame", "4.api.lab")]
        asked += [(rev_name(ip), None) for ip in sorted(self.ptr)]
        diffs, count = [], 0
        for name, rel in asked:
            for t in TYPES:
                for edns in (None, 1232):
                    what = "%s %d %s" % (name, t, "edns" if edns else "plain")
                    diffs += self.compare(what, query(name, t, edns=edns), rel)
                    count += 1
        print("\n%d queries to berth and to nsd, %d differences" % (count, len(diffs)))
        self.assertEqual(diffs, [], "\n".join(diffs[:40]))
        self.assertEqual(self.sink.got, [], "berth forwarded a query of its own zone")

    def test_classes_and_errors_agree(self):
        two_opt = query("web.docker", T_A, edns=1232)
        cases = [
            ("CHAOS version.bind", query("version.bind", T_TXT, qclass=CLASS_CH)),
            ("CHAOS in the zone", query("web.docker", T_A, qclass=CLASS_CH, edns=1232)),
            ("class ANY", query("web.docker", T_A, qclass=CLASS_ANY)),
            ("class ANY NXDOMAIN", query("nothere.docker", T_A, qclass=CLASS_ANY)),
            # Two OPT records: FORMERR, and OPT with it.
            ("FORMERR edns", two_opt[:10] + b"\0\2" + two_opt[12:] + opt_record(1232)),
        ]
        diffs = []
        for what, msg in cases:
            diffs += self.compare(what, msg, "web" if "class ANY" == what else None)
        self.assertEqual(diffs, [], "\n".join(diffs))
        self.assertEqual(self.sink.got, [], "berth forwarded a query of another class")


if __name__ == "__main__":
    unittest.main(verbosity=2)
