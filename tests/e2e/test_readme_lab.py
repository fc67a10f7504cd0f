#!/usr/bin/python3
"""The README's lab, run from the README itself (issue 14, point 1).

This test READS README.md and takes its commands from there: every code
block of "Names and labels" (up to its first subsection) and the first code
block and the name table of "DNS for container names". It runs them against
the shipped examples/compose.yml and a private dockerd (dockerd.py) and
checks that each does what the README says. A command the test does not
know, or one it expects and the README lost, fails it: the README cannot
drift from the code without this test saying so.

What the test must change, and nothing else:
  - the README's fixed host ports (8080, 8081, 5432, 5353) become free ones,
    and so does the berth.publish port 8090 of compose.yml when it is taken
    (then a copy of compose.yml with only that port changed is brought up);
  - berth gets `--docker unix://<private dockerd>`, and docker-compose and
    docker run with DOCKER_HOST set to it;
  - `--upstream 127.0.0.53` becomes a dnsmasq the test starts on loopback;
  - `dig -x <address>` gets lab_db_1's address, `3f2a9c1b0d4e` web's short id.

No registry is reachable, so the images compose.yml names are stand-ins,
made in the private dockerd from the locally imported busybox
(berth-test/busybox):
  nginx:alpine        `docker tag berth-test/busybox nginx:alpine`: busybox
                      httpd on port 80 answering GET / with the container's
                      hostname (its short id), so the test sees which
                      replica answered;
  postgres:16-alpine  built FROM berth-test/busybox: `nc -ll -p 5432` runs a
                      script that answers the PostgreSQL protocol as a server
                      refusing everyone (SSLRequest -> 'N', startup ->
                      ErrorResponse FATAL 28000), which is what pg_isready
                      reports as "accepting connections".

Then, beyond the README's commands: a second project `shop` with its own
`backend` and `db` makes db.backend ambiguous (nothing answers, one
warning naming db.lab_backend and db.shop_backend), and taking it down
makes db.backend lab's again.

Traffic goes to 127.0.0.1 (berth, dnsmasq) and to the test's containers.
Exit 77 (ctest: skipped) without root, dockerd, docker-compose, static
busybox, curl, dig, dnsmasq or pg_isready.
"""

import atexit
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dockerd as dk  # noqa: E402
import e2e_util as u  # noqa: E402
import test_dns as td  # noqa: E402   (Dnsmasq)

REPO = dk.REPO
README = os.path.join(REPO, "README.md")
COMPOSE_FILE = "examples/compose.yml"       # as the README names it
SETTLE_S = 20.0
CURL = shutil.which("curl")
PG_ISREADY = shutil.which("pg_isready")

PG_STANDIN = r"""#!/bin/sh
# A PostgreSQL server that turns everyone away (pg_isready: accepting).
dd bs=8 count=1 >/dev/null 2>&1
printf N
dd bs=4096 count=1 >/dev/null 2>&1
printf 'E\000\000\000\052SFATAL\000C28000\000Mstand-in for postgres\000\000'
"""

D = None
DM = None
TMP = None
PROCS = []


def note(msg):
    sys.stderr.write(f"    [{time.strftime('%T')}] {msg}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- the README

def _section(md, title):
    """The text under '## title' up to the next heading of level 2 or 3."""
    m = re.search(r"^## " + re.escape(title) + r"\n(.*?)(?=^#{2,3} |\Z)", md, re.M | re.S)
    if not m:
        raise AssertionError(f"README.md has no section '## {title}'")
    return m.group(1)


def _blocks(text):
    """Indented code blocks: lists of (command, comment) with the comment
    after '  # ' split off."""
    blocks, cur = [], []
    prev_blank = True
    for line in text.split("\n") + [""]:
        if line.startswith("    ") and (cur or prev_blank):
            body = line[4:]
            cmd, _, comment = body.partition("  # ")
            cur.append((cmd.strip(), comment.strip()))
        elif line.strip() == "" and cur:
            blocks.append(cur)
            cur = []
        elif line.strip():
            if cur:
                blocks.append(cur)
                cur = []
        prev_blank = line.strip() == ""
    return blocks


def _table_names(text):
    """The DNS name table's first column: [(names, answer text)]."""
    rows = []
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows.append((re.findall(r"`([^`]+)`", cells[0]), cells[1]))
    return rows


def readme():
    with open(README) as f:
        md = f.read()
    names = _blocks(_section(md, "Names and labels"))
    dns = _section(md, "DNS for container names")
    dns_blocks = _blocks(dns)
    if not dns_blocks:
        raise AssertionError("README's DNS section has no code block")
    return [l for b in names for l in b], dns_blocks[0], _table_names(dns)


# ---------------------------------------------------------------- fixtures

def setUpModule():
    global D, DM, TMP
    u.require_berth()
    dk.require(compose=True)
    for tool, pkg in ((CURL, "curl"), (td.DIG, "dnsutils"), (td.DNSMASQ, "dnsmasq-base"),
                      (PG_ISREADY, "postgresql-client")):
        if not tool:
            raise unittest.SkipTest(f"{pkg} not installed")
    signal.signal(signal.SIGTERM, _interrupt)
    atexit.register(_cleanup)
    TMP = tempfile.mkdtemp(prefix="berth-readme.",
                           dir=os.environ.get("BERTH_TEST_ROOT") or "/tmp")
    DM = td.Dnsmasq()
    D = dk.PrivateDockerd()
    D.__enter__()
    # The images compose.yml names, as stand-ins (see the docstring).
    D.docker("tag", dk.IMAGE, "nginx:alpine")
    ctx = os.path.join(TMP, "pg")
    os.makedirs(ctx)
    with open(os.path.join(ctx, "pg-standin"), "w") as f:
        f.write(PG_STANDIN)
    os.chmod(os.path.join(ctx, "pg-standin"), 0o755)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(f"FROM {dk.IMAGE}\nCOPY pg-standin /bin/pg-standin\n"
                'CMD ["nc", "-ll", "-p", "5432", "-e", "/bin/pg-standin"]\n')
    D.docker("build", "-q", "-t", "postgres:16-alpine", ctx, timeout=120)


def tearDownModule():
    _cleanup()


def _cleanup():
    global D, DM, TMP
    for p in PROCS:
        with_log = p.alive()
        rc = p.stop()
        p.close()
        if with_log and rc != 0:
            note(f"berth {p.argv[1:]} exited {rc} on SIGTERM")
    PROCS.clear()
    for obj in (DM, D):
        if obj is not None:
            try:
                obj.close()
            except Exception as e:
                note(f"cleanup of {obj!r}: {e}")
    DM = D = None
    if TMP:
        shutil.rmtree(TMP, ignore_errors=True)
        TMP = None


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def wait_for(pred, timeout=SETTLE_S, interval=0.1):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > end:
            return v
        time.sleep(interval)


def run(argv, timeout=60, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


# ---------------------------------------------------------------- the test

class ReadmeLab(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.lab, self.dns, self.table = readme()
        self.ports = {}          # the README's port -> the test's

    def port(self, readme_port):
        if readme_port not in self.ports:
            self.ports[readme_port] = u.free_port()
        return self.ports[readme_port]

    def berth(self, cmd, extra=()):
        """A README berth command with the test's ports, docker and upstream."""
        argv = shlex.split(cmd)
        self.assertEqual(argv[0], "berth", cmd)
        out, binds = [], []
        i = 1
        while i < len(argv):
            a = argv[i]
            if a == "-p":
                host, port, rest = argv[i + 1].split(":", 2)
                p = self.port(int(port))
                out += ["-p", f"{host}:{p}:{rest}"]
                binds.append(("tcp", p))
                i += 2
            elif a == "--dns":
                host, port = argv[i + 1].rsplit(":", 1)
                p = self.port(int(port))
                out += ["--dns", f"{host}:{p}"]
                binds += [("udp", p), ("tcp", p)]
                i += 2
            elif a == "--upstream":
                self.assertEqual(argv[i + 1], "127.0.0.53", cmd)
                out += ["--upstream", f"127.0.0.1:{DM.port}"]
                i += 2
            else:
                out.append(a)
                i += 1
        b = u.Berth(["--docker", D.url] + out + list(extra), docker=True)
        PROCS.append(b)
        b.wait_bound(binds)
        return b

    def curl(self, cmd):
        argv = shlex.split(cmd)
        url = argv[-1]
        m = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/", url)
        self.assertTrue(m, cmd)
        argv[-1] = f"http://127.0.0.1:{self.port(int(m.group(1)))}/"
        r = run(argv + ["--max-time", "5"])
        return r.stdout.strip() if r.returncode == 0 else None

    def test_readme_lab(self):
        lab = [c for c, _ in self.lab]
        comments = dict(self.lab)
        compose_cmd = "docker-compose -p lab -f examples/compose.yml up -d --scale api=3"
        self.assertIn(compose_cmd, lab)
        berth_cmds = [c for c in lab if c.startswith("berth ")]
        self.assertEqual(len(berth_cmds), 1, lab)
        known = {compose_cmd, berth_cmds[0]}

        # The label's port: the shipped file when 8090 is free.
        compose_file = COMPOSE_FILE
        with open(os.path.join(REPO, COMPOSE_FILE)) as f:
            yml = f.read()
        self.assertIn('berth.publish: "127.0.0.1:8090:80"', yml)
        if not u._port_free("0.0.0.0", 8090):
            p = self.port(8090)
            compose_file = os.path.join(TMP, "compose.yml")
            with open(compose_file, "w") as f:
                f.write(yml.replace("127.0.0.1:8090:80", f"127.0.0.1:{p}:80"))
            note(f"port 8090 is taken: compose.yml copied with {p}")
        else:
            self.ports[8090] = 8090
        argv = shlex.split(compose_cmd)
        argv[argv.index(COMPOSE_FILE)] = compose_file
        r = run([dk.COMPOSE, "--ansi", "never"] + argv[1:], cwd=REPO, env=D.env,
                timeout=180)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        # What the README says Compose made.
        names = set(D.docker("ps", "--format", "{{.Names}}").split())
        self.assertEqual(names, {"lab_api_1", "lab_api_2", "lab_api_3", "lab_web_1",
                                 "lab_db_1"})
        nets = set(D.docker("network", "ls", "--format", "{{.Name}}").split())
        self.assertTrue({"lab_default", "lab_backend"} <= nets, nets)
        host = {n: D.short_id(n) for n in names}     # hostname = short id
        api = {host[f"lab_api_{i}"] for i in (1, 2, 3)}

        b = self.berth(berth_cmds[0])

        # Every curl and pg_isready line, checked for what it says.
        checks = {
            8080: lambda out: out in api,
            8081: lambda out: out == host["lab_api_2"],
            8090: lambda out: out == host["lab_web_1"],
        }
        for cmd in lab:
            if cmd in known:
                continue
            if cmd.startswith("curl "):
                rp = int(re.search(r"127\.0\.0\.1:(\d+)/", cmd).group(1))
                self.assertIn(rp, checks, f"README command not covered: {cmd}")
                self.assertTrue(wait_for(lambda: (o := self.curl(cmd)) and checks[rp](o)),
                                f"{cmd}: {self.curl(cmd)!r}\n{b.log_tail()}")
                if rp == 8080:      # "in turn": each replica, round-robin
                    seen = [self.curl(cmd) for _ in range(6)]
                    self.assertEqual(set(seen), api, seen)
                    self.assertEqual(len(set(seen[:3])), 3, seen)
                note(f"{cmd}: ok ({comments[cmd]})")
            elif cmd.startswith("pg_isready "):
                argv = shlex.split(cmd)
                i = argv.index("-p")
                rp = int(argv[i + 1])
                argv[i + 1] = str(self.port(rp))
                want = comments[cmd].split(" (")[0].replace(f":{rp} ", f":{argv[i + 1]} ")
                out = wait_for(lambda: run(argv).stdout.strip() == want)
                self.assertTrue(out, f"{cmd}: {run(argv).stdout!r}, want {want!r}\n"
                                     f"{b.log_tail()}")
                note(f"{cmd}: {want}")
            else:
                self.fail(f"README command not covered by test_readme_lab.py: {cmd}")
        self.assertTrue({"curl", "pg_isready"} <= {c.split()[0] for c in lab}, lab)
        self.assertNotIn("no running container", b.stderr())

        dns = self.dns_section(host)
        self.ambiguity(b, dns)

    def dns_section(self, host):
        cmds = [c for c, _ in self.dns]
        comments = dict(self.dns)
        self.assertIn("docker run -d --name web nginx:alpine", cmds)
        r = run([dk.DOCKER] + shlex.split("run -d --name web nginx:alpine"), env=D.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        berth = [c for c in cmds if c.startswith("berth ")]
        self.assertEqual(len(berth), 1, cmds)
        b = self.berth(berth[0])
        port = self.port(5353)

        def ips(name, net=None):
            nets = D.inspect(name)["NetworkSettings"]["Networks"]
            return sorted(v["IPAddress"] for k, v in nets.items() if net in (None, k))

        db_backend = ips("lab_db_1", "lab_backend")[0]
        replicas = sorted(ips(f"lab_api_{i}")[0] for i in (1, 2, 3))
        want = {   # what the comments and the table say, in addresses
            "web.docker": ips("web"),
            f"{D.short_id('web')}.docker": ips("web"),
            "lab_web_1.docker": ips("lab_web_1"),
            "web.lab.docker": ips("lab_web_1"),
            "api.lab.docker": replicas,
            "2.api.lab.docker": ips("lab_api_2"),
            "db.backend.docker": [db_backend],
            "db.lab_backend.docker": [db_backend],
            "lab_db_1.backend.docker": [db_backend],
            "ns.docker": ["127.0.0.1"],   # the address the query came to
        }
        # Names the table says exist with no records: NOERROR, not NXDOMAIN.
        for name in ("lab.docker", "backend.docker", "lab_backend.docker"):
            want[name] = []

        def dig(*args):
            r = run([td.DIG, "@127.0.0.1", "-p", str(port), "+time=2", "+tries=2"]
                    + list(args))
            return r.stdout.split()

        for cmd in cmds:
            if cmd.startswith(("docker run", "berth ")):
                continue
            self.assertTrue(cmd.startswith("dig @127.0.0.1 -p 5353 "),
                            f"README command not covered: {cmd}")
            args = shlex.split(cmd)[4:]
            if "-x" in args:
                self.assertEqual(args, ["+short", "-x", "<address>"], cmd)
                ptr = comments[cmd].rsplit(": ", 1)[-1]
                self.assertEqual(ptr, "lab_db_1.docker.", cmd)
                got = wait_for(lambda: dig("+short", "-x", db_backend) == [ptr])
                self.assertTrue(got, f"{cmd}: {dig('+short', '-x', db_backend)}")
                note(f"{cmd} ({db_backend}): {ptr}")
                continue
            self.assertEqual(args[0], "+short", cmd)
            name = args[1]
            self.assertIn(name, want, f"README command not covered: {cmd}")
            got = wait_for(lambda: sorted(dig("+short", name)) == want[name])
            self.assertTrue(got, f"{cmd}: {dig('+short', name)}, want {want[name]}\n"
                                 f"{b.log_tail()}")
            if name == "api.lab.docker":    # "order rotating"
                firsts = {dig("+short", name)[0] for _ in range(3)}
                self.assertEqual(len(firsts), 3, firsts)
            note(f"{cmd}: {' '.join(want[name])}")

        # The table: every name it lists answers as its row says.
        rows = [r for r in self.table if r[0] and r[0][0].endswith(".docker")]
        self.assertTrue(rows, self.table)
        for names, text in rows:
            for name in names:
                if name == "3f2a9c1b0d4e.docker":
                    name = f"{D.short_id('web')}.docker"
                self.assertIn(name, want, f"README table name not covered: {name}")
                got = wait_for(lambda: sorted(dig("+short", name)) == want[name], 5)
                self.assertTrue(got, f"{name} ({text}): {dig('+short', name)}")
                if not want[name]:
                    status = dig("+noall", "+comments", name)
                    self.assertIn("NOERROR,", status, f"{name} ({text}): {status}")
        return dig

    def ambiguity(self, b, dig):
        """Two projects with a db on a `backend`: db.backend is nobody's
        (clients closed, NXDOMAIN), until one goes."""
        dbport = self.port(5432)
        argv = [PG_ISREADY, "-h", "127.0.0.1", "-p", str(dbport)]
        D.compose("shop", os.path.join(REPO, COMPOSE_FILE), "up", "-d", "db",
                  timeout=180)
        ok = wait_for(lambda: run(argv).returncode != 0)
        self.assertTrue(ok, "db.backend still answers with two projects' db on backend")
        self.assertTrue(wait_for(lambda: "'db.backend' is ambiguous" in b.stderr()),
                        b.log_tail())
        line = next(l for l in b.stderr().splitlines() if "is ambiguous" in l)
        self.assertIn("db.lab_backend (project lab)", line)
        self.assertIn("db.shop_backend (project shop)", line)
        for _ in range(3):
            run(argv)
        self.assertEqual(b.stderr().count("is ambiguous"), 1, b.log_tail())
        out = " ".join(dig("db.backend.docker"))
        self.assertIn("status: NXDOMAIN", out)
        self.assertEqual(dig("+short", "db.shop_backend.docker"),
                         [D.ip("shop_db_1", "shop_backend")])
        note(f"two projects: {line}")
        D.compose("shop", os.path.join(REPO, COMPOSE_FILE), "down", timeout=180)
        self.assertTrue(wait_for(lambda: run(argv).returncode == 0), b.log_tail())
        self.assertTrue(wait_for(lambda: dig("+short", "db.backend.docker") ==
                                 [D.ip("lab_db_1", "lab_backend")]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
