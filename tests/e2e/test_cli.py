#!/usr/bin/python3
"""berth's command line: help/version, bad usage (exit 2, one line, nothing
bound), --check, --config, which Docker engine (and a bad one), port
ranges, port in use (exit 1), signals."""

import hashlib
import json
import re
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402


def setUpModule():
    u.require_berth()


class HelpVersion(unittest.TestCase):
    def test_help(self):
        for opt in ("--help", "-h"):
            rc, out, err, _ = u.run_berth([opt], no_docker=False)
            self.assertEqual(rc, 0, f"{opt}: stderr={err!r}")
            self.assertIn("--publish", out, f"{opt} should list --publish on stdout")

    def test_version(self):
        rc, out, err, _ = u.run_berth(["--version"], no_docker=False)
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"\d+\.\d+", "version number on stdout")


class BadUsage(unittest.TestCase):
    """Each case: exit 2, exactly one stderr line 'berth: ...' naming the
    offending text, and no AF_INET/AF_INET6 bind() (checked with strace when
    available; otherwise the good port must still be free)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="berth-cli-")
        cls.P = u.free_ports(4)       # P..P+3
        cls.Q = u.free_ports(3)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def config(self, name, text):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check_bad(self, args, needles, good_ports=()):
        rc, out, err, binds = u.run_berth(args, strace_binds=True)
        ctx = f"args={args!r} stderr={err!r}"
        self.assertEqual(rc, 2, ctx)
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, "exactly one stderr line: " + ctx)
        self.assertTrue(lines[0].startswith("berth: "), ctx)
        if isinstance(needles, str):
            needles = [needles]
        self.assertTrue(any(n in lines[0] for n in needles),
                        f"stderr should name one of {needles!r}: {ctx}")
        if binds is not None:
            self.assertEqual(binds, [], "nothing may be bound: " + ctx)
        for port in good_ports:
            self.assertFalse(u.port_in_use("tcp", port), ctx)
            self.assertFalse(u.port_in_use("udp", port), ctx)

    def test_bad_options(self):
        P, Q = self.P, self.Q
        cases = [
            (["--bogus"], "--bogus"),
            (["-p"], ["-p", "publish"]),
            (["--udp-timeout", "abc"], "abc"),
            (["--udp-timeout", "-1"], "-1"),
            (["--max-conns", "many"], "many"),
            (["--max-conns", "-3"], "-3"),
            (["--log-level", "loud"], "loud"),
            (["stray-argument"], "stray-argument"),
            (["--config", "/nonexistent/berth.json"], "/nonexistent/berth.json"),
        ]
        for args, needles in cases:
            with self.subTest(args=args):
                self.check_bad(["-p", f"127.0.0.1:{P}:127.0.0.1:{Q}"] + args,
                               needles, good_ports=[P])

    def test_bad_specs(self):
        P, Q = self.P, self.Q
        specs = [
            f"{P}",                                    # only a port
            f"{P}:127.0.0.1",                          # missing target port
            f"127.0.0.1:{P}:127.0.0.1",                # missing target port
            f"{P}:127.0.0.1:",                         # empty target port
            f"{P}:127.0.0.1:abc",                      # non-numeric port
            f"70000:127.0.0.1:{Q}",                    # host port too large
            f"{P}:127.0.0.1:70000",                    # target port too large
            f"{P}:127.0.0.1:{Q}/dccp",                 # unknown protocol
            f"{P}-{P + 2}:127.0.0.1:{Q}-{Q + 1}",      # range lengths differ
            f"{P + 2}-{P}:127.0.0.1:{Q + 2}-{Q}",      # reversed range
            f"256.1.1.1:{P}:127.0.0.1:{Q}",            # bad host IP
            f"127.0.0.1:{P}:999.0.0.1:{Q}",            # bad target IP
            f"[::1:{P}:127.0.0.1:{Q}",                 # unclosed bracket
            f"{P}:web:{Q}",                            # a name, with --no-docker
            "",                                        # empty spec
        ]
        for spec in specs:
            with self.subTest(spec=spec):
                needles = [spec] if spec else ["''", '""', "empty", "publish"]
                # A good spec first: berth must not bind it before failing.
                self.check_bad(["-p", f"127.0.0.1:{P + 3}:127.0.0.1:{Q}",
                                "-p", spec], needles, good_ports=[P + 3])

    def test_bad_config_files(self):
        P, Q = self.P, self.Q
        good = f"127.0.0.1:{P}:127.0.0.1:{Q}"
        cases = [
            ("syntax.json", '{"publish": [', None),
            ("notobject.json", '["publish"]', None),
            ("unknown.json", json.dumps({"publish": [good], "bogus-key": 1}), "bogus-key"),
            ("badspec.json", json.dumps({"publish": [good, f"{P + 1}:127.0.0.1"]}),
             f"{P + 1}:127.0.0.1"),
            ("badtimeout.json", json.dumps({"udp-timeout": "abc"}), ["abc", "udp-timeout"]),
            ("badlevel.json", json.dumps({"log-level": "loud"}), "loud"),
        ]
        for name, text, needles in cases:
            with self.subTest(config=name):
                path = self.config(name, text)
                # A parse error should name the file; a bad value may name
                # the value (or the file).
                self.check_bad(["--config", path],
                               [path, name] + ([] if needles is None else
                                               ([needles] if isinstance(needles, str) else needles)),
                               good_ports=[P])


    def test_bad_tcp_settings(self):
        """--tcp-keepalive and --idle-timeout, on the command line and in
        a config file: exit 2, one line naming the offending text."""
        P, Q = self.P, self.Q
        good = f"127.0.0.1:{P}:127.0.0.1:{Q}"
        cases = [
            (["--tcp-keepalive", "15:15"], "'15:15'"),
            (["--tcp-keepalive", "abc"], "'abc'"),
            (["--tcp-keepalive", "15:15:200"], "'15:15:200'"),
            (["--tcp-keepalive", "40000"], "'40000'"),
            (["--tcp-keepalive", "0:15:9"], "'0:15:9'"),
            (["--tcp-keepalive=-1"], "'-1'"),
            (["--idle-timeout", "soon"], "'soon'"),
            (["--idle-timeout", "-1"], "'-1'"),
        ]
        for args, needle in cases:
            with self.subTest(args=args):
                self.check_bad(["-p", good] + args, needle, good_ports=[P])
        files = [
            ("ka.json", {"publish": [good], "tcp-keepalive": "1:2"}, "'1:2'"),
            ("kanum.json", {"publish": [good], "tcp-keepalive": 99999}, "'99999'"),
            ("kabool.json", {"publish": [good], "tcp-keepalive": True}, "tcp-keepalive"),
            ("idle.json", {"publish": [good], "idle-timeout": "60"}, "idle-timeout"),
        ]
        for name, body, needle in files:
            with self.subTest(config=name):
                path = self.config(name, json.dumps(body))
                self.check_bad(["--config", path], needle, good_ports=[P])

    def test_sctp_switches_refused(self):
        """An SCTP entry asking for what only TCP (and UDP) have: exit 2,
        one line naming the entry."""
        P, Q = self.P, self.Q
        spec = f"127.0.0.1:{P}:127.0.0.1:{Q}/sctp"
        for name, entry, needle in [
                ("sctp-t.json", {"spec": spec, "transparent": True},
                 "transparent mode is for TCP and UDP only"),
                ("sctp-pp.json", {"spec": spec, "proxy_protocol": "v2"},
                 "the PROXY protocol is for TCP only")]:
            with self.subTest(config=name):
                path = self.config(name, json.dumps({"publish": [entry]}))
                self.check_bad(["--config", path], needle)


class Sctp(unittest.TestCase):
    """What berth says about SCTP on the host that runs the suite; the
    relay itself is tested in a QEMU guest whose kernel has SCTP
    (tests/sctp/)."""

    def test_check_lists_sctp_mappings(self):
        rc, out, err, _ = u.run_berth(["--check", "-p", "3868:10.0.0.3:3868/sctp"])
        self.assertEqual(rc, 0, err)
        self.assertIn("sctp 0.0.0.0:3868 -> 10.0.0.3:3868", out)

    def test_kernel_without_sctp_is_one_line(self):
        try:
            socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
            self.skipTest("this kernel has SCTP: the guest suite covers it")
        except OSError:
            pass
        P = u.free_ports(2)
        rc, out, err, _ = u.run_berth(["-p", f"127.0.0.1:{P}:127.0.0.1:{P + 1}/sctp"])
        self.assertEqual(rc, 1, err)
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertIn(f"listen sctp 127.0.0.1:{P}: this kernel has no SCTP (", lines[0])


class Check(unittest.TestCase):
    def test_check_prints_plan_binds_nothing(self):
        P = u.free_ports(3)
        Q = u.free_ports(3)
        U = u.free_port()
        args = ["--check",
                "-p", f"127.0.0.1:{P}-{P + 2}:127.0.0.1:{Q}-{Q + 2}",
                "-p", f"127.0.0.1:{U}:127.0.0.1:{Q}/udp"]
        rc, out, err, binds = u.run_berth(args, strace_binds=True)
        self.assertEqual(rc, 0, f"stderr={err!r}")
        self.assertTrue(out.strip(), "--check prints the plan on stdout")
        for port in (P, Q, U):
            self.assertIn(str(port), out, f"plan should mention {port}:\n{out}")
        if binds is not None:
            self.assertEqual(binds, [], "--check binds nothing")
        for port in (P, P + 1, P + 2, U):
            self.assertFalse(u.port_in_use("tcp", port))
            self.assertFalse(u.port_in_use("udp", port))

    def test_check_bad_spec_exits_2(self):
        P = u.free_port()
        rc, out, err, _ = u.run_berth(["--check", "-p", f"{P}:127.0.0.1"])
        self.assertEqual(rc, 2, err)
        self.assertEqual(len(err.splitlines()), 1, err)

    def test_check_config_file(self):
        P, Q = u.free_port(), u.free_port()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "c.json")
            with open(path, "w") as f:
                json.dump({"publish": [f"127.0.0.1:{P}:127.0.0.1:{Q}/udp"],
                           "udp-timeout": 7, "max-conns": 3,
                           "log-level": "debug"}, f)
            rc, out, err, binds = u.run_berth(["--check", "--config", path],
                                              strace_binds=True)
        self.assertEqual(rc, 0, err)
        self.assertIn(str(P), out)
        if binds is not None:
            self.assertEqual(binds, [])


    def test_check_shows_client_address_switches(self):
        """--transparent and --proxy-protocol switch on the command line's
        -p entries; a config file's object entries say for themselves."""
        P, Q = u.free_port(), u.free_port()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "c.json")
            with open(path, "w") as f:
                json.dump({"publish": [
                    f"127.0.0.1:{P}:127.0.0.1:80",
                    {"spec": f"127.0.0.1:{Q}:127.0.0.1:81", "transparent": True,
                     "proxy_protocol": "v1"}]}, f)
            R, U = u.free_port(), u.free_port()
            rc, out, err, _ = u.run_berth(
                ["--check", "--no-docker", "--config", path, "--transparent",
                 "--proxy-protocol", "v2", "-p", f"127.0.0.1:{R}:127.0.0.1:82",
                 "-p", f"127.0.0.1:{U}:127.0.0.1:53/udp"])
        self.assertEqual(rc, 0, err)
        lines = {ln.split()[1]: ln for ln in out.splitlines()
                 if ln.startswith("  tcp ") or ln.startswith("  udp ")}
        self.assertNotIn("transparent", lines[f"127.0.0.1:{P}"])
        self.assertNotIn("proxy-protocol", lines[f"127.0.0.1:{P}"])
        self.assertIn("(transparent) (proxy-protocol v1)", lines[f"127.0.0.1:{Q}"])
        self.assertIn("(transparent) (proxy-protocol v2)", lines[f"127.0.0.1:{R}"])
        self.assertTrue(lines[f"127.0.0.1:{U}"].endswith("(transparent)"), out)
        rc, out, err, _ = u.run_berth(["--check", "--proxy-protocol", "v3",
                                       "-p", f"127.0.0.1:{R}:127.0.0.1:82"])
        self.assertEqual((rc, err.strip()),
                         (2, "berth: --proxy-protocol 'v3': want v1, v2 or off"))


def run_env(args, env, strace_binds=True):
    """berth (Docker wanted: no --no-docker) with exactly env; as
    u.run_berth, with bind() calls listed under strace when it works."""
    argv = [u.BERTH] + [str(a) for a in args]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30, env=env, start_new_session=True)
    binds = None
    if strace_binds and u.have_strace():
        with tempfile.TemporaryDirectory(prefix="berth-strace-") as d:
            out = os.path.join(d, "trace")
            tenv = dict(env, ASAN_OPTIONS="detect_leaks=0")
            subprocess.run(["strace", "-f", "-qq", "-e", "trace=bind", "-o", out] + argv,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                           env=tenv, start_new_session=True)
            with open(out) as f:
                binds = [l.strip() for l in f if "bind(" in l and "AF_INET" in l]
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"), binds)


class DockerEndpoint(unittest.TestCase):
    """Which engine berth follows, found as the docker CLI finds it
    (--docker, DOCKER_HOST, DOCKER_CONTEXT, the config's current context,
    the default socket), shown by --check; a bad one from any source is a
    usage error that binds nothing. Each run gets its own environment and
    DOCKER_CONFIG."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="berth-ctx-")
        self.cfg = self.tmp.name
        self.P = u.free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        self.env.update(DOCKER_CONFIG=self.cfg, HOME=self.cfg)

    def tearDown(self):
        self.tmp.cleanup()

    def context(self, name, host, skip=False, tls=()):
        """A context as `docker context create` stores it."""
        cid = hashlib.sha256(name.encode()).hexdigest()
        meta = os.path.join(self.cfg, "contexts", "meta", cid)
        os.makedirs(meta)
        with open(os.path.join(meta, "meta.json"), "w") as f:
            json.dump({"Name": name, "Metadata": {},
                       "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip}}}, f)
        for file in tls:
            d = os.path.join(self.cfg, "contexts", "tls", cid, "docker")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, file), "w") as f:
                f.write("pem")
        return meta

    def use(self, name):
        with open(os.path.join(self.cfg, "config.json"), "w") as f:
            json.dump({"auths": {}, "currentContext": name}, f)

    def check(self, args=(), **env):
        # --check-wait 0: these engines are not there (or are the host's
        # own dockerd, or an address off this machine): ask none of them.
        rc, out, err, _ = run_env(["--check", "--check-wait", "0",
                                   "-p", f"127.0.0.1:{self.P}:web:80"] +
                                  list(args), dict(self.env, **env), strace_binds=False)
        self.assertEqual(rc, 0, f"env={env!r} stderr={err!r}")
        line = [l for l in out.splitlines() if l.startswith("names from the Docker API")]
        self.assertEqual(len(line), 1, out)
        return line[0][len("names from the Docker API at "):]

    def test_check_shows_endpoint_and_source(self):
        self.assertEqual(self.check(), "unix:///var/run/docker.sock (from default; unix socket)")
        self.assertEqual(self.check(["--docker", "tcp://127.0.0.1:2375/"]),
                         "tcp://127.0.0.1:2375 (from --docker; plain HTTP, no TLS)")
        self.assertEqual(self.check(DOCKER_HOST="tcp://10.0.0.9"),
                         "tcp://10.0.0.9:2375 (from DOCKER_HOST; plain HTTP, no TLS)")
        # DOCKER_CERT_PATH says where the files are, never that TLS is on.
        self.assertEqual(self.check(DOCKER_HOST="tcp://10.0.0.9:2376",
                                    DOCKER_CERT_PATH=self.cfg),
                         "tcp://10.0.0.9:2376 (from DOCKER_HOST; plain HTTP, no TLS)")
        self.assertEqual(self.check(DOCKER_HOST="tcp://10.0.0.9:2376", DOCKER_TLS_VERIFY="1"),
                         "tcp://10.0.0.9:2376 (from DOCKER_HOST; TLS, server verified)")
        self.assertEqual(self.check(DOCKER_HOST="tcp://10.0.0.9:2376", DOCKER_TLS="1"),
                         "tcp://10.0.0.9:2376 (from DOCKER_HOST; TLS, server NOT verified)")
        self.assertEqual(self.check(["--docker", "unix:///x.sock"], DOCKER_HOST="tcp://h:1"),
                         "unix:///x.sock (from --docker; unix socket)")

    def test_contexts(self):
        self.context("remote", "tcp://10.1.1.1:2376", tls=("ca.pem",))
        self.context("other", "tcp://10.2.2.2:2375")
        self.context("lax", "tcp://10.3.3.3:2376", skip=True)
        self.use("remote")
        cfgfile = os.path.join(self.cfg, "config.json")
        self.assertEqual(self.check(), "tcp://10.1.1.1:2376 (from context 'remote' "
                                       f"({cfgfile}); TLS, server verified)")
        self.assertEqual(self.check(DOCKER_CONTEXT="other"),
                         "tcp://10.2.2.2:2375 (from DOCKER_CONTEXT=other; plain HTTP, no TLS)")
        self.assertEqual(self.check(DOCKER_CONTEXT="lax"),
                         "tcp://10.3.3.3:2376 (from DOCKER_CONTEXT=lax; TLS, server NOT verified)")
        self.assertEqual(self.check(DOCKER_CONTEXT="default"),
                         "unix:///var/run/docker.sock (from DOCKER_CONTEXT=default; unix socket)")
        # DOCKER_HOST wins over any context, as in the CLI.
        self.assertEqual(self.check(DOCKER_HOST="tcp://10.9.9.9:2375", DOCKER_CONTEXT="other"),
                         "tcp://10.9.9.9:2375 (from DOCKER_HOST; plain HTTP, no TLS)")

    def test_docker_cli_made_context(self):
        """The store layout as the real CLI writes it."""
        docker = shutil.which("docker")
        if not docker:
            self.skipTest("no docker CLI")
        env = dict(self.env)
        for argv in (["context", "create", "made", "--docker", "host=tcp://127.0.0.1:1"],
                     ["context", "use", "made"]):
            r = subprocess.run([docker] + argv, env=env, capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
        cfgfile = os.path.join(self.cfg, "config.json")
        self.assertEqual(self.check(), "tcp://127.0.0.1:1 (from context 'made' "
                                       f"({cfgfile}); plain HTTP, no TLS)")
        self.assertEqual(self.check(DOCKER_CONTEXT="made"),
                         "tcp://127.0.0.1:1 (from DOCKER_CONTEXT=made; plain HTTP, no TLS)")

    def test_bad_endpoints_exit_2(self):
        meta = self.context("broken", "tcp://h:2375")
        with open(os.path.join(meta, "meta.json"), "w") as f:
            f.write('{"Endpoints": ')
        self.context("badhost", "ftp://h")
        cases = [
            ({"DOCKER_HOST": "foo://x"}, ["DOCKER_HOST 'foo://x'", "unknown scheme"]),
            ({"DOCKER_HOST": "tcp://h:99999"}, ["DOCKER_HOST 'tcp://h:99999'", "bad port"]),
            ({"DOCKER_HOST": "ssh://"}, ["DOCKER_HOST 'ssh://'", "no host"]),
            ({"DOCKER_CONTEXT": "nope"}, ["context 'nope' (DOCKER_CONTEXT)", "no such context"]),
            ({"DOCKER_CONTEXT": "broken"}, ["context 'broken' (DOCKER_CONTEXT)", "meta.json"]),
            ({"DOCKER_CONTEXT": "badhost"}, ["context 'badhost' (DOCKER_CONTEXT) host 'ftp://h'"]),
        ]
        for env, needles in cases:
            for check in (["--check"], []):
                with self.subTest(env=env, check=check):
                    rc, out, err, binds = run_env(
                        check + ["-p", f"127.0.0.1:{self.P}:web:80"], dict(self.env, **env))
                    ctx = f"env={env!r} stderr={err!r}"
                    self.assertEqual(rc, 2, ctx)
                    lines = err.splitlines()
                    self.assertEqual(len(lines), 1, ctx)
                    self.assertTrue(lines[0].startswith("berth: "), ctx)
                    for n in needles:
                        self.assertIn(n, lines[0], ctx)
                    if binds is not None:
                        self.assertEqual(binds, [], "nothing may be bound: " + ctx)
                    self.assertFalse(u.port_in_use("tcp", self.P), ctx)
        # Named by the config's current context: the file is named.
        self.use("nope")
        rc, out, err, _ = run_env(["--check", "-p", f"127.0.0.1:{self.P}:web:80"], self.env,
                                  strace_binds=False)
        self.assertEqual(rc, 2, err)
        self.assertIn(f"context 'nope' ({os.path.join(self.cfg, 'config.json')})", err)

    def test_no_docker_needed_no_check(self):
        """IP targets only: the endpoint is not looked at."""
        rc, out, err, _ = run_env(["--check", "-p", f"127.0.0.1:{self.P}:127.0.0.1:80"],
                                  dict(self.env, DOCKER_HOST="foo://x"), strace_binds=False)
        self.assertEqual(rc, 0, err)
        self.assertNotIn("Docker API", out)


def host_has_ipv6():
    """As berth decides it: /proc/net/if_inet6 lists an address."""
    try:
        with open("/proc/net/if_inet6") as f:
            return bool(f.read(1))
    except OSError:
        return False


def resolv_conf_upstreams(path="/etc/resolv.conf"):
    """The nameservers of resolv.conf as berth prints them (IP:53)."""
    got = []
    try:
        with open(path) as f:
            for line in f:
                w = line.split()
                if len(w) >= 2 and w[0] == "nameserver":
                    ip = w[1].split("%")[0]
                    try:
                        socket.inet_pton(socket.AF_INET, ip)
                        got.append(f"{ip}:53")
                    except OSError:
                        try:
                            socket.inet_pton(socket.AF_INET6, ip)
                            got.append(f"[{ip}]:53")
                        except OSError:
                            pass
    except OSError:
        return None
    return got[:8]


class CheckPlan(unittest.TestCase):
    """--check shows the whole plan: both listeners of a spec without
    HOST_IP, DNS listeners, zone, TTL, upstreams (given, or resolv.conf's),
    labels on/off, the Docker endpoint really used and, against the fake
    Engine API, what runs behind each name target now; exit 0 for a valid
    plan even when a name has nothing running or the engine is down. The
    fake engine answers on a unix socket: no traffic but loopback."""

    def setUp(self):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}

    def test_whole_plan_without_docker(self):
        P, U, D = u.free_port(), u.free_port(), u.free_port()
        args = ["--check", "--no-docker", "-p", f"{P}:127.0.0.1:80",
                "-p", f"127.0.0.1:{U}:127.0.0.1:81/udp",
                "--dns", f"127.0.0.1:{D}", "--dns", f"[::1]:{D}",
                "--domain", "lab.test", "--ttl", "7",
                "--upstream", "127.0.0.1:5300", "--upstream", "[::1]"]
        rc, out, err, binds = u.run_berth(args, strace_binds=True, no_docker=False)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertIn(f"  tcp 0.0.0.0:{P} -> 127.0.0.1:80", lines, out)
        if host_has_ipv6():
            self.assertIn(f"  tcp [::]:{P} -> 127.0.0.1:80", lines, out)
        else:
            self.assertNotIn(f"  tcp [::]:{P} -> 127.0.0.1:80", lines, out)
        self.assertIn(f"dns: zone lab.test, ttl 7s, on 127.0.0.1:{D} [::1]:{D} (udp+tcp)",
                      lines, out)
        self.assertIn("dns upstreams: 127.0.0.1:5300 [::1]:53 (from --upstream)", lines, out)
        self.assertIn("labels: off", lines, out)
        self.assertIn("docker: off (--no-docker)", lines, out)
        if binds is not None:
            self.assertEqual(binds, [], "--check binds nothing")

    def test_upstreams_from_resolv_conf(self):
        """No --upstream: resolv.conf's nameservers, named as such. Only
        printed: strace shows berth sends nothing anywhere."""
        want = resolv_conf_upstreams()
        if want is None:
            self.skipTest("no readable /etc/resolv.conf")
        D = u.free_port()
        rc, out, err, _ = u.run_berth(["--check", "--dns", f"127.0.0.1:{D}"])
        self.assertEqual(rc, 0, err)
        if want:
            line = f"dns upstreams: {' '.join(want)} (from /etc/resolv.conf)"
        else:
            line = ("dns upstreams: none (none in /etc/resolv.conf); names outside "
                    "the zone get SERVFAIL")
        self.assertIn(line, out.splitlines(), out)
        if u.have_strace():
            with tempfile.TemporaryDirectory(prefix="berth-strace-") as d:
                trace = os.path.join(d, "trace")
                env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
                subprocess.run(["strace", "-f", "-qq", "-e",
                                "trace=connect,sendto,sendmsg,sendmmsg,bind", "-o", trace,
                                u.BERTH, "--no-docker", "--check", "--dns",
                                f"127.0.0.1:{D}"], env=env, capture_output=True,
                               timeout=30, start_new_session=True)
                with open(trace) as f:
                    inet = [l.strip() for l in f if "AF_INET" in l]
            self.assertEqual(inet, [], "--check talks to nobody")

    def fake(self):
        from fakedocker import FakeDocker
        fake = FakeDocker()
        self.addCleanup(fake.close)
        fake.add("web", "127.0.0.2")
        for n, ip in ((1, "127.0.0.3"), (2, "127.0.0.4")):
            fake.add(f"lab-api-{n}", ip, labels={
                "com.docker.compose.project": "lab", "com.docker.compose.service": "api",
                "com.docker.compose.container-number": str(n)})
        fake.add("labelled", "127.0.0.5", labels={"berth.publish": "18080:80"})
        return fake

    def test_names_behind_targets(self):
        fake = self.fake()
        P, Q = u.free_port(), u.free_ports(2)
        args = ["--check", "--docker", fake.url, "--labels",
                "-p", f"127.0.0.1:{P}:web:80", "-p", f"127.0.0.1:{P}:api.lab:80/udp",
                "-p", f"127.0.0.1:{Q}-{Q + 1}:ghost:80-81"]
        rc, out, err, binds = run_env(args, self.env)
        self.assertEqual(rc, 0, f"a name with nothing behind it is a warning: {err}\n{out}")
        lines = out.splitlines()
        self.assertIn(f"names from the Docker API at {fake.url} (from --docker; unix socket)",
                      lines, out)
        self.assertIn("labels: on (berth.publish of running containers)", lines, out)
        self.assertIn("  web -> web 127.0.0.2", lines, out)
        self.assertIn("  api.lab -> lab-api-1 127.0.0.3, lab-api-2 127.0.0.4", lines, out)
        self.assertEqual([l for l in lines if "ghost" in l and "->" not in l],
                         ["warning: name target 'ghost': nothing running by that name now"],
                         out)
        self.assertIn("  label of 'labelled': berth.publish=18080:80", lines, out)
        self.assertTrue(any(l.startswith("running now (4 containers)") for l in lines), out)
        if binds is not None:
            self.assertEqual(binds, [], "--check binds nothing")
        self.assertFalse(u.port_in_use("tcp", P) or u.port_in_use("udp", P))

    def test_docker_host_is_the_one_used(self):
        fake = self.fake()
        P = u.free_port()
        rc, out, err, _ = run_env(["--check", "-p", f"127.0.0.1:{P}:web:80"],
                                  dict(self.env, DOCKER_HOST=fake.url), strace_binds=False)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertIn(f"names from the Docker API at {fake.url} (from DOCKER_HOST; "
                      "unix socket)", lines, out)
        self.assertNotIn("$DOCKER_HOST", out)
        # Asked there: the name resolves from the fake's containers.
        self.assertIn("  web -> web 127.0.0.2", lines, out)
        self.assertTrue(fake.paths(), "the fake engine was never asked")

    def test_engine_down_is_a_warning(self):
        with tempfile.TemporaryDirectory(prefix="berth-nodocker-") as d:
            sock = os.path.join(d, "missing.sock")
            P = u.free_port()
            rc, out, err, _ = run_env(["--check", "--docker", f"unix://{sock}",
                                       "-p", f"127.0.0.1:{P}:web:80"], self.env,
                                      strace_binds=False)
        self.assertEqual(rc, 0, f"Docker down is a warning, not an error: {err}")
        warn = [l for l in out.splitlines() if l.startswith("warning: names not checked:")]
        self.assertEqual(len(warn), 1, out)
        self.assertIn(sock, warn[0])
        self.assertIn("no such socket", warn[0])
        self.assertEqual(err, "", "the reason is said once, on stdout")
        rc, out, err, _ = run_env(["--check", "--check-wait", "0", "--docker",
                                   f"unix://{sock}", "-p", f"127.0.0.1:{P}:web:80"],
                                  self.env, strace_binds=False)
        self.assertEqual(rc, 0, err)
        self.assertIn("names not checked (--check-wait 0)", out.splitlines())

    def test_check_wait_0_asks_no_engine(self):
        """--check-wait 0 against an engine that is there: not one request
        (the printed line alone would pass a --check that asked anyway);
        the default wait asks it."""
        fake = self.fake()
        P = u.free_port()
        args = ["--docker", fake.url, "-p", f"127.0.0.1:{P}:web:80"]
        rc, out, err, _ = run_env(["--check", "--check-wait", "0"] + args, self.env,
                                  strace_binds=False)
        self.assertEqual(rc, 0, err)
        self.assertIn("names not checked (--check-wait 0)", out.splitlines(), out)
        self.assertNotIn("  web -> web 127.0.0.2", out.splitlines(), out)
        self.assertEqual(fake.paths(), [], "--check-wait 0 asked the engine")
        rc, out, err, _ = run_env(["--check"] + args, self.env, strace_binds=False)
        self.assertEqual(rc, 0, err)
        self.assertIn("  web -> web 127.0.0.2", out.splitlines(), out)
        self.assertTrue(fake.paths(), "the default --check-wait never asked the engine")


class DualStack(unittest.TestCase):
    """docker run -p's defaults: without HOST_IP, 0.0.0.0 and [::] (when
    the host has IPv6); an explicit 0.0.0.0 or [::] is that family only;
    collisions count both."""

    def setUp(self):
        if not host_has_ipv6():
            self.skipTest("the host has no IPv6: specs without HOST_IP are IPv4 only")

    def test_both_wildcards_listen(self):
        P, U = u.free_port(hosts=("0.0.0.0", "::")), u.free_port(hosts=("0.0.0.0", "::"))
        with u.EchoServer() as e, u.UdpEcho() as ue, \
                u.Berth(["-p", f"{P}:127.0.0.1:{e.port}",
                         "-p", f"{U}:127.0.0.1:{ue.port}/udp"]) as b:
            b.wait_bound([("tcp", P), ("udp", U)])
            for host in ("127.0.0.1", "::1"):
                self.assertEqual(u.tcp_roundtrip((host, P), b"dual"), b"dual", host)
                fam = socket.AF_INET6 if ":" in host else socket.AF_INET
                with u.udp_socket(fam) as s:
                    r, _ = u.udp_roundtrip(s, b"dual-udp", (host, U))
                self.assertEqual(r, b"dual-udp", host)
            held = u.socket_inodes(b.pid)
            self.assertEqual(len(u.listening_inodes("tcp", P) & held), 2,
                             "one IPv4 and one IPv6 TCP listener")
            log = b.stderr()
            self.assertIn(f"listening: 0.0.0.0:{P}->127.0.0.1:{e.port}/tcp, "
                          f"[::]:{P}->127.0.0.1:{e.port}/tcp", log)
            self.assertEqual(b.stop(), 0, b.stderr())

    def test_explicit_wildcards_are_one_family(self):
        P = u.free_port(hosts=("0.0.0.0", "::"))
        with u.EchoServer(greet=b"4") as e4, u.EchoServer(greet=b"6") as e6, \
                u.Berth(["-p", f"0.0.0.0:{P}:127.0.0.1:{e4.port}",
                         "-p", f"[::]:{P}:127.0.0.1:{e6.port}"]) as b:
            b.wait_bound([("tcp", P)])
            u.poll_until(lambda: len(u.listening_inodes("tcp", P)) == 2, 10)
            self.assertEqual(u.tcp_roundtrip(("127.0.0.1", P), b"x", extra=1), b"4x")
            self.assertEqual(u.tcp_roundtrip(("::1", P), b"x", extra=1), b"6x")

    def test_collision_names_both(self):
        P = u.free_port()
        a, bspec = f"{P}:a:80", f"[::]:{P}:b:80"
        rc, out, err, binds = u.run_berth(["-p", a, "-p", bspec], strace_binds=True,
                                          no_docker=False)
        self.assertEqual(rc, 2, err)
        self.assertEqual(err.splitlines(), [
            f"berth: --publish '{bspec}': [::]:{P}/tcp is already published by "
            f"'{a}' ([::]:{P}->a:80/tcp)"])
        if binds is not None:
            self.assertEqual(binds, [])

    def test_check_shows_both(self):
        P = u.free_port()
        rc, out, err, _ = u.run_berth(["--check", "-p", f"{P}-{P + 1}:127.0.0.1:80-81/udp"])
        self.assertEqual(rc, 0, err)
        self.assertIn("berth plan: 4 mappings", out)
        for k in (0, 1):
            self.assertIn(f"  udp 0.0.0.0:{P + k} -> 127.0.0.1:{80 + k}", out)
            self.assertIn(f"  udp [::]:{P + k} -> 127.0.0.1:{80 + k}", out)


class TcpSettings(unittest.TestCase):
    def test_check_prints_them(self):
        P = u.free_port()
        rc, out, err, _ = u.run_berth(["--check", "-p", f"127.0.0.1:{P}:127.0.0.1:9"])
        self.assertEqual(rc, 0, err)
        self.assertIn("tcp-keepalive 15:15:9, idle-timeout never", out)
        rc, out, err, _ = u.run_berth(["--check", "-p", f"127.0.0.1:{P}:127.0.0.1:9",
                                       "--tcp-keepalive", "30", "--idle-timeout", "600"])
        self.assertEqual(rc, 0, err)
        self.assertIn("tcp-keepalive 30:15:9, idle-timeout 600s", out)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "c.json")
            with open(path, "w") as f:
                json.dump({"publish": [f"127.0.0.1:{P}:127.0.0.1:9"],
                           "tcp-keepalive": 0, "idle-timeout": 3600}, f)
            rc, out, err, _ = u.run_berth(["--check", "--config", path])
        self.assertEqual(rc, 0, err)
        self.assertIn("tcp-keepalive off, idle-timeout 3600s", out)

    def test_help_lists_them(self):
        rc, out, err, _ = u.run_berth(["--help"], no_docker=False)
        self.assertEqual(rc, 0, err)
        self.assertIn("--tcp-keepalive", out)
        self.assertIn("--idle-timeout", out)


class Running(unittest.TestCase):
    def test_config_file_forwards(self):
        P, U = u.free_port(), u.free_port()
        with u.EchoServer() as echo, u.UdpEcho() as uecho, \
                tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "c.json")
            with open(path, "w") as f:
                json.dump({"publish": [f"127.0.0.1:{P}:127.0.0.1:{echo.port}",
                                       f"127.0.0.1:{U}:127.0.0.1:{uecho.port}/udp"],
                           "udp-timeout": 30, "max-conns": 100,
                           "no-docker": True, "log-level": "warn"}, f)
            with u.Berth(["--config", path]) as b:
                b.wait_bound([("tcp", P), ("udp", U)])
                self.assertEqual(u.tcp_roundtrip(("127.0.0.1", P), b"config"), b"config")
                with u.udp_socket() as s:
                    r, _ = u.udp_roundtrip(s, b"config-udp", ("127.0.0.1", U))
                self.assertEqual(r, b"config-udp")
                self.assertEqual(b.stop(), 0, b.stderr())

    def test_command_line_adds_to_config(self):
        """--config publish list plus -p on the command line: both served."""
        P1, P2 = u.free_port(), u.free_port()
        with u.EchoServer(greet=b"1") as e1, u.EchoServer(greet=b"2") as e2, \
                tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "c.json")
            with open(path, "w") as f:
                json.dump({"publish": [f"127.0.0.1:{P1}:127.0.0.1:{e1.port}"]}, f)
            with u.Berth(["--config", path, "-p", f"127.0.0.1:{P2}:127.0.0.1:{e2.port}"]) as b:
                b.wait_bound([("tcp", P1), ("tcp", P2)])
                self.assertEqual(u.tcp_roundtrip(("127.0.0.1", P1), b"x", extra=1), b"1x")
                self.assertEqual(u.tcp_roundtrip(("127.0.0.1", P2), b"x", extra=1), b"2x")

    def test_ranges_expand(self):
        P = u.free_ports(3, hosts=("127.0.0.1",))
        Q = u.free_ports(3, hosts=("127.0.0.1",))
        UP = u.free_ports(3, hosts=("127.0.0.1",))
        tcp = [u.EchoServer(port=Q + i, greet=b"T%d" % i) for i in range(3)]
        udp = [u.UdpEcho(port=Q + i, tag=b"U%d" % i) for i in range(3)]
        try:
            with u.Berth(["-p", f"127.0.0.1:{P}-{P + 2}:127.0.0.1:{Q}-{Q + 2}",
                          "-p", f"127.0.0.1:{UP}-{UP + 2}:127.0.0.1:{Q}-{Q + 2}/udp"]) as b:
                b.wait_bound([("tcp", P + i) for i in range(3)] +
                             [("udp", UP + i) for i in range(3)])
                for i in range(3):
                    self.assertEqual(u.tcp_roundtrip(("127.0.0.1", P + i), b"-r", extra=2),
                                     b"T%d-r" % i, f"tcp port {P + i}")
                    with u.udp_socket() as s:
                        s.sendto(b"-r", ("127.0.0.1", UP + i))
                        got = None
                        for _ in range(3):
                            try:
                                got, _a = s.recvfrom(100)
                                break
                            except socket.timeout:
                                s.sendto(b"-r", ("127.0.0.1", UP + i))
                        self.assertEqual(got, b"U%d-r" % i, f"udp port {UP + i}")
                self.assertEqual(b.stop(), 0, b.stderr())
        finally:
            for s in tcp + udp:
                s.close()

    def test_port_in_use_exits_1(self):
        for proto in ("tcp", "udp"):
            with self.subTest(proto=proto):
                P, P2 = u.free_port(), u.free_port()
                typ = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
                with socket.socket(socket.AF_INET, typ) as hog:
                    hog.bind(("127.0.0.1", P))
                    if proto == "tcp":
                        hog.listen(1)
                    with u.Berth(["-p", f"127.0.0.1:{P2}:127.0.0.1:9/{proto}",
                                  "-p", f"127.0.0.1:{P}:127.0.0.1:9/{proto}"]) as b:
                        rc = b.wait(20)
                        self.assertEqual(rc, 1, f"stderr={b.stderr()!r}")
                        err = b.stderr()
                        # A runtime error is a log line, not a usage line:
                        # only ask that it names the port.
                        self.assertIn(str(P), err, "the error should name the port")
                    self.assertFalse(u.port_in_use(proto, P2))

    def test_signals_exit_0(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(sig=sig.name):
                P = u.free_port()
                with u.EchoServer() as e, \
                        u.Berth(["-p", f"127.0.0.1:{P}:127.0.0.1:{e.port}"]) as b:
                    b.wait_bound([("tcp", P)])
                    # An open connection must not keep berth from exiting.
                    c = socket.create_connection(("127.0.0.1", P), timeout=10)
                    try:
                        c.sendall(b"a")
                        self.assertEqual(u.recv_exact(c, 1), b"a")
                        self.assertEqual(b.stop(sig), 0, b.stderr())
                    finally:
                        c.close()
                    self.assertFalse(u.port_in_use("tcp", P))

    def test_other_signals_do_not_stop(self):
        """SIGHUP (a reload request, or a closed terminal), SIGUSR1 (a
        status line), SIGUSR2 and SIGALRM: berth keeps forwarding, then
        stops cleanly on SIGTERM."""
        P = u.free_port()
        with u.EchoServer() as e, \
                u.Berth(["-p", f"127.0.0.1:{P}:127.0.0.1:{e.port}"]) as b:
            b.wait_bound([("tcp", P)])
            c = socket.create_connection(("127.0.0.1", P), timeout=10)
            try:
                for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
                    b.send_signal(sig)
                    # A signal that killed it would show by the next round trip.
                    self.assertTrue(b.wait(0.2) is None, f"{sig.name}: {b.log_tail()}")
                    c.sendall(sig.name.encode())
                    self.assertEqual(u.recv_exact(c, len(sig.name)), sig.name.encode())
                    self.assertEqual(u.tcp_roundtrip(("127.0.0.1", P), b"new"), b"new")
                status = re.compile(r"status: 1 port, [12] TCP sessions?, 0 UDP flows")
                u.poll_until(lambda: status.search(b.stderr()), 5, what="status line")
                self.assertRegex(b.stderr(), status)
                self.assertIn("SIGHUP", b.stderr())
                self.assertEqual(b.stop(signal.SIGTERM), 0, b.stderr())
            finally:
                c.close()


class ManPage(unittest.TestCase):
    """docs/berth.1 in step with `berth --help`: the same options with the
    same argument words, the version berth prints, and roff that groff and
    man render without a warning."""

    PAGE = os.path.join(u.REPO, "docs", "berth.1")

    @staticmethod
    def help_options(text):
        """{"--publish": "-p, --publish SPEC", ...} from --help: an option
        line starts "  -x, --name" or "      --name"; what follows two
        spaces is its description."""
        opts = {}
        for line in text.splitlines():
            m = re.match(r"^(?:  (-\w), |      )(--[\w-]+)(.*)$", line)
            if m:
                syn = re.split(r"\s{2,}", (m.group(2) + m.group(3)).rstrip())[0]
                opts[m.group(2)] = f"{m.group(1)}, {syn}" if m.group(1) else syn
        return opts

    @staticmethod
    def man_options(roff):
        """The same from the page: each .TP tag line of the OPTIONS
        section, its font escapes dropped and \\- read as -."""
        sect = re.search(r"^\.SH OPTIONS\n(.*?)^\.SH ", roff, re.S | re.M)
        assert sect, "no OPTIONS section"
        lines = sect.group(1).splitlines()
        opts = {}
        for i, line in enumerate(lines):
            if line == ".TP" and i + 1 < len(lines):
                tag = re.sub(r"\\f[BIRP]", "", lines[i + 1]).replace("\\-", "-")
                name = re.search(r"--[\w-]+", tag)
                assert name, f"a .TP tag without a long option: {lines[i + 1]!r}"
                opts[name.group(0)] = tag
        return opts

    def setUp(self):
        with open(self.PAGE) as f:
            self.roff = f.read()
        rc, self.help, err, _ = u.run_berth(["--help"], no_docker=False)
        self.assertEqual(rc, 0, err)

    def test_every_option_in_both(self):
        got_help = self.help_options(self.help)
        got_man = self.man_options(self.roff)
        self.assertGreaterEqual(len(got_help), 20, got_help)  # the parser saw them
        self.assertEqual(sorted(set(got_help) - set(got_man)), [],
                         "in --help, missing from docs/berth.1's OPTIONS")
        self.assertEqual(sorted(set(got_man) - set(got_help)), [],
                         "in docs/berth.1's OPTIONS, not in --help")
        for name in got_help:
            self.assertEqual(got_man[name], got_help[name],
                             f"{name}: argument words differ between --help and the page")

    def test_sections_and_version(self):
        for sect in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "DOCKER-PROXY MODE",
                     "ENVIRONMENT", "FILES", "EXIT STATUS", "SEE ALSO"):
            self.assertRegex(self.roff, rf"(?m)^\.SH {re.escape(sect)}$")
        rc, out, err, _ = u.run_berth(["--version"], no_docker=False)
        version = out.split()[1]
        th = re.search(r"(?m)^\.TH BERTH 1 .*\"berth ([^\"]+)\"", self.roff)
        self.assertIsNotNone(th, "no .TH line naming the version")
        self.assertEqual(th.group(1), version, "the page's .TH version is not berth's")

    def test_renders_without_warnings(self):
        groff = shutil.which("groff")
        if not groff:
            self.skipTest("groff not installed")
        r = subprocess.run([groff, "-ww", "-z", "-man", self.PAGE],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        man = shutil.which("man")
        if man:
            r = subprocess.run([man, "-l", self.PAGE], capture_output=True, text=True,
                               timeout=30, env={**os.environ, "MANPAGER": "cat",
                                                "PAGER": "cat", "MANWIDTH": "80"})
            self.assertEqual((r.returncode, r.stderr), (0, ""))
            self.assertIn("--log-format", r.stdout.replace("\u2010", "-"))


if __name__ == "__main__":
    u.main()
