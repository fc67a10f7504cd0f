"""Docker Swarm fixtures for berth's end-to-end tests (Python 3.11 stdlib).

    with SingleSwarm() as s:                 # one dockerd in a namespace
        m = s.manager
        m.deploy(STACK_FILE, "lab", env={...})
        m.wait_tasks("lab_web", 3)
        m.task_addrs("lab_web", "lab_net")   # {task id: (slot, node, address)}
        s.client.run(["curl", ...])          # in the node's namespace

    with Swarm3() as s:                      # three dockerd in namespaces
        s.node(1).docker("node", "ls")
        s.client.run(["curl", ...])          # the client namespace
        s.node(3).stop_dockerd()             # worker 3's dockerd stops

What this machine allows (../../shared/testing.md, "Several hosts"): the
kernel has no IPVS, so service VIPs and the ingress mesh never answer; no
test may depend on them. Images are per daemon and no registry is
reachable: every daemon runs with DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 and
stacks are deployed with --resolve-image never. Test services stop within
1 s (stop_grace_period: sh/httpd as PID 1 ignore SIGTERM otherwise).

SingleSwarm: one node (below) in a network namespace of the test's own with
only lo, a one-node swarm advertised on 127.0.0.1. Not dockerd.py's daemon
in the root namespace: a swarm daemon makes a bridge named docker_gwbridge
there, one name for every swarm daemon on the machine, so two runs at once
(or a daemon of someone else's) would share it and each other's addresses.

Swarm3: three nodes, each a dockerd with its own containerd, hostname and
mount namespace (a private tmpfs /run) in a network namespace of its own,
joined by veths to a bridge in another namespace of the test's; a client
namespace beside them; no namespace has a default route (asserted), so no
packet can leave the machine. Each daemon also listens on
unix:///run/docker.sock of its private /run: the SAME path on every node,
so one global service can bind-mount /var/run/docker.sock everywhere.
Node 1 is the manager, nodes 2 and 3 are workers. close() stops everything
by pid (pidfiles, the launchers and their descendants, and containers left
under their shims through runc's state directory), deletes the namespaces
and removes the root under ${BERTH_TEST_ROOT:-/tmp}.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
from urllib.parse import quote

import dockerd as dk
import e2e_util as u

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BERTH_IMAGE_SCRIPT = os.path.join(REPO, "scripts", "berth-image")
BERTH_IMAGE = "berth:local"
WEB_IMAGE = dk.IMAGE
API = dk.API
NSENTER = shutil.which("nsenter")
UNSHARE = shutil.which("unshare")
CONTAINERD = shutil.which("containerd")
RUNC = shutil.which("runc") or "/usr/sbin/runc"
IP = shutil.which("ip") or "/usr/sbin/ip"

# A node is marked Down 9-14 s after its dockerd stops, its tasks are
# rescheduled 15-20 s later: waits on Swarm get this much patience.
SWARM_PATIENCE = 60.0


def note(msg):
    import sys
    sys.stderr.write(f"    [{time.strftime('%T')}] {msg}\n")
    sys.stderr.flush()


def require():
    """SkipTest, saying why, unless root, dockerd, the docker CLI, a static
    busybox, ldd (for the berth image), containerd, runc, nsenter and
    unshare are there."""
    dk.require()
    if not shutil.which("ldd"):
        raise unittest.SkipTest("ldd not installed (libc-bin): scripts/berth-image needs it")
    for name, path in (("containerd", CONTAINERD), ("runc", RUNC), ("nsenter", NSENTER),
                       ("unshare", UNSHARE)):
        if not path or not os.access(path, os.X_OK):
            raise unittest.SkipTest(f"{name} not installed (a swarm node needs it)")


def require_clients():
    """require(), and the clients the Swarm suites use: dig, dnsmasq, curl."""
    import test_dns as td
    require()
    for name, path in (("dig", td.DIG), ("dnsmasq", td.DNSMASQ),
                       ("curl", shutil.which("curl"))):
        if not path:
            raise unittest.SkipTest(f"{name} not installed")


def import_berth_image(hosts, berth=None):
    """scripts/berth-image --berth BERTH -H each host; the tag."""
    argv = [BERTH_IMAGE_SCRIPT, "--berth", berth or u.BERTH, "--tag", BERTH_IMAGE]
    for h in hosts:
        argv += ["-H", h]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise dk.DockerError(f"scripts/berth-image: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout.strip()


class SwarmApi:
    """Swarm questions asked of one daemon (self.docker, self.api_json)."""

    def services(self):
        return self.api_json(f"/{API}/services")

    def service(self, name):
        return self.api_json(f"/{API}/services/{quote(name)}")

    def tasks(self, service, running=True):
        """The service's tasks; with running, only those desired and
        actually running."""
        f = {"service": [service]}
        if running:
            f["desired-state"] = ["running"]
        ts = self.api_json(f"/{API}/tasks?filters={quote(json.dumps(f))}")
        if running:
            ts = [t for t in ts if t.get("Status", {}).get("State") == "running"]
        return ts

    def network_id(self, name):
        return self.api_json(f"/{API}/networks/{quote(name)}")["Id"]

    def task_addrs(self, service, network):
        """{task id: (slot, node id, overlay address)} of the running tasks
        on the network (by name)."""
        nid = self.network_id(network)
        out = {}
        for t in self.tasks(service):
            for att in t.get("NetworksAttachments") or []:
                if att["Network"]["ID"] == nid and att.get("Addresses"):
                    out[t["ID"]] = (t.get("Slot"), t.get("NodeID"),
                                    att["Addresses"][0].split("/")[0])
        return out

    def vip(self, service, network):
        """The service's virtual IP on the network, or None."""
        nid = self.network_id(network)
        for v in self.service(service).get("Endpoint", {}).get("VirtualIPs") or []:
            if v["NetworkID"] == nid:
                return v["Addr"].split("/")[0]
        return None

    def wait_tasks(self, service, n, timeout=SWARM_PATIENCE, where=None):
        """Waits until exactly n tasks of the service run (where: a
        predicate on the task list, e.g. spread over nodes); the tasks."""
        last = []

        def ok():
            nonlocal last
            with contextlib.suppress(dk.DockerError, OSError, ValueError):
                last = self.tasks(service)
            return len(last) == n and (where is None or where(last))

        if not u.poll_until(ok, timeout, 0.25):
            raise AssertionError(
                f"{service}: {len(last)} tasks running after {timeout} s, wanted {n}: "
                + self.docker("service", "ps", "--no-trunc", service, check=False))
        return last

    def scale(self, service, n):
        self.docker("service", "scale", "--detach", f"{service}={n}")

    def deploy(self, file, stack, env=None):
        """docker stack deploy of FILE as STACK, ${VAR}s from env, never
        resolving images at a registry."""
        r = subprocess.run([dk.DOCKER, "stack", "deploy", "--resolve-image", "never",
                            "-c", file, stack], env=dict(self.env, **(env or {})),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise dk.DockerError(f"docker stack deploy {stack}: exit {r.returncode}: "
                                 + (r.stdout + r.stderr).strip())
        return r.stdout

    def gwbridge(self):
        """docker_gwbridge's (subnet, gateway): made at swarm init or join,
        for the ingress sandbox."""
        ok = u.poll_until(lambda: self.docker("network", "ls", "-q", "--filter",
                                              "name=docker_gwbridge", check=False), 20, 0.2)
        if not ok:
            raise dk.DockerError("no docker_gwbridge network")
        cfg = self.api_json(f"/{API}/networks/docker_gwbridge")["IPAM"]["Config"][0]
        return cfg["Subnet"], cfg.get("Gateway") or cfg["Subnet"].rsplit(".", 1)[0] + ".1"

    def gwbridge_addr(self, container):
        """A container's address on docker_gwbridge (reachable from its node)."""
        c = self.api_json(f"/{API}/containers/{container}/json")
        g = c["NetworkSettings"]["Networks"].get("docker_gwbridge")
        if g and g.get("IPAddress"):
            return g["IPAddress"]
        net = self.api_json(f"/{API}/networks/docker_gwbridge")
        e = net.get("Containers", {}).get(c["Id"])
        return e["IPv4Address"].split("/")[0] if e else None

    def container_of(self, task):
        return task["Status"]["ContainerStatus"]["ContainerID"]


# ---------------------------------------------------------------- three nodes

NODE_SCRIPT = """#!/bin/bash
# Node {n}: runs as
#   nsenter --net=/run/netns/{ns} -- unshare -m -u --propagation slave -- THIS
# (its own network, UTS and slave mount namespace; not `ip netns exec`,
# which remounts all of /sys and hides the cgroup mounts dockerd needs).
set -e
hostname {hostname}
# A private /run: containerd's and the shims' sockets, dockerd's netns
# files, and the node's /run/docker.sock, the same path on every node.
mount -t tmpfs -o mode=0755 {hostname}-run /run
mkdir -p /run/containerd /run/docker
# /sys shows the root namespace's links: give /sys/class/net and
# /sys/devices/virtual/net this namespace's view, keep the rest (cgroups).
mkdir -p /run/nodesys && mount -t sysfs {hostname}-sysfs /run/nodesys
mount --bind /run/nodesys/class/net /sys/class/net
mount --bind /run/nodesys/devices/virtual/net /sys/devices/virtual/net
{containerd} --config {dir}/containerd.toml >{dir}/containerd.log 2>&1 &
echo $! >{dir}/containerd.pid
for i in $(seq 100); do [ -S {dir}/ctd.sock ] && break; sleep 0.1; done
export DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
exec {dockerd} --config-file {dir}/daemon.json --data-root {dir}/data --exec-root {dir}/x \\
    -H unix://{dir}/docker.sock -H unix:///run/docker.sock --pidfile {dir}/dockerd.pid \\
    --containerd {dir}/ctd.sock --iptables=false --ip6tables=false \\
    >{dir}/dockerd.log 2>&1
"""

CONTAINERD_TOML = """version = 2
root = "{dir}/ctd-root"
state = "{dir}/ctd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{dir}/ctd.sock"
[ttrpc]
  address = ""
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/ctd-opt"
"""


def alive(pid):
    """True while pid runs (a zombie does not: kill -0 says yes to one)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return not any(l.startswith("State:") and "Z" in l.split()[1] for l in f)
    except OSError:
        return False


def _wait_gone(pid, timeout):
    return u.poll_until(lambda: not alive(pid), timeout, 0.1)


def _read_pid(path):
    with contextlib.suppress(OSError, ValueError), open(path) as f:
        return int(f.read().strip())
    return None


def _busybox_tar(path):
    """The berth-test/busybox root file system (dockerd.py's) as a tar."""
    img = path + ".d"
    os.makedirs(os.path.join(img, "bin"))
    for d in ("www", "tmp"):
        os.makedirs(os.path.join(img, d))
    shutil.copy(dk.BUSYBOX, os.path.join(img, "bin", "busybox"))
    for a in ("sh", "httpd", "nc", "sleep", "cat", "echo", "hostname", "mkdir", "kill",
              "ls", "ip", "true"):
        os.symlink("busybox", os.path.join(img, "bin", a))
    p = os.path.join(img, "bin", "hostweb")
    with open(p, "w") as f:
        f.write(dk.HOSTWEB)
    os.chmod(p, 0o755)
    subprocess.run(["tar", "-C", img, "-cf", path, "."], check=True)
    shutil.rmtree(img)


class Node(SwarmApi):
    """One dockerd of Swarm3 (n 1..3), its address on the test's bridge."""

    def __init__(self, n, root, ns, addr):
        self.n, self.ns, self.addr = n, ns, addr
        self.hostname = f"node{n}"
        self.dir = os.path.join(root, f"n{n}")
        self.sock = os.path.join(self.dir, "docker.sock")
        self.url = "unix://" + self.sock
        self.env = dict(os.environ, DOCKER_HOST=self.url,
                        DOCKER_CONFIG=os.path.join(root, "cli"))
        for k in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
            self.env.pop(k, None)
        self.launcher = None     # Popen: nsenter, exec'ing down to dockerd

    def docker(self, *args, check=True, timeout=60):
        r = subprocess.run([dk.DOCKER] + [str(a) for a in args], env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        if check and r.returncode != 0:
            raise dk.DockerError(f"node{self.n}: docker {' '.join(map(str, args))}: exit "
                                 f"{r.returncode}: " + r.stderr.decode("utf-8", "replace").strip())
        return r.stdout.decode("utf-8", "replace").strip()

    def api_json(self, path, timeout=10):
        c = dk._UnixHTTPConnection(self.sock, timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                raise dk.DockerError(f"node{self.n}: GET {path}: {r.status} {body[:200]!r}")
            return json.loads(body)
        finally:
            c.close()

    def ping(self):
        with contextlib.suppress(OSError, dk.DockerError, ValueError):
            c = dk._UnixHTTPConnection(self.sock, 2)
            try:
                c.request("GET", "/_ping")
                return c.getresponse().status == 200
            finally:
                c.close()
        return False

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, "containerd.toml"), "w") as f:
            f.write(CONTAINERD_TOML.format(dir=self.dir))
        with open(os.path.join(self.dir, "daemon.json"), "w") as f:
            # dockerd 20.10 keeps its identity in /etc/docker/key.json unless
            # told otherwise: three nodes sharing it are one node to Swarm.
            json.dump({"deprecated-key-path": os.path.join(self.dir, "key.json")}, f)
        script = os.path.join(self.dir, "run-node.sh")
        with open(script, "w") as f:
            f.write(NODE_SCRIPT.format(n=self.n, ns=self.ns, hostname=self.hostname,
                                       dir=self.dir, containerd=CONTAINERD,
                                       dockerd=dk.DOCKERD))
        os.chmod(script, 0o755)
        self._log = open(os.path.join(self.dir, "launcher.log"), "ab")
        self.launcher = subprocess.Popen(
            [NSENTER, f"--net=/run/netns/{self.ns}", "--", UNSHARE, "-m", "-u",
             "--propagation", "slave", "--", script],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def wait_up(self, timeout=60):
        ok = u.poll_until(lambda: self.ping() or self.launcher.poll() is not None, timeout, 0.1)
        if not ok or not self.ping():
            raise dk.DockerError(f"node{self.n}: dockerd did not come up:\n" + self.log_tail())

    def log_tail(self, n=30):
        with contextlib.suppress(OSError), open(os.path.join(self.dir, "dockerd.log"),
                                                errors="replace") as f:
            return "".join(f.readlines()[-n:])
        return "(no dockerd log)"

    def dockerd_pid(self):
        return _read_pid(os.path.join(self.dir, "dockerd.pid")) or (
            self.launcher.pid if self.launcher else None)

    def stop_dockerd(self, timeout=30):
        """SIGTERM to dockerd (it stops its containers first); waits until
        it is gone. Seconds it took."""
        t0 = time.monotonic()
        pid = self.dockerd_pid()
        if pid and alive(pid):
            os.kill(pid, signal.SIGTERM)
            if not _wait_gone(pid, timeout):
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 10)
        if self.launcher is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.launcher.wait(10)
        return time.monotonic() - t0

    def close(self, root):
        """Everything of this node, by pid: containers (docker kill, then
        runc's state directory for what dockerd left), dockerd, what still
        carries this node's directory in its command line (the shims, with
        -address DIR/ctd.sock), containerd."""
        if self.ping():
            ids = self.docker("ps", "-q", check=False, timeout=30).split()
            if ids:
                self.docker("kill", *ids, check=False, timeout=30)
        self.stop_dockerd()
        runc_root = os.path.join(self.dir, "x", "runtime-runc", "moby")
        if os.path.isdir(runc_root):
            r = subprocess.run([RUNC, "--root", runc_root, "list", "-q"], capture_output=True,
                               text=True)
            for cid in r.stdout.split():
                subprocess.run([RUNC, "--root", runc_root, "kill", "--all", cid, "KILL"],
                               capture_output=True)
        ctd = _read_pid(os.path.join(self.dir, "containerd.pid"))
        for pid in _pids_mentioning(self.dir):
            if pid != ctd:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        if ctd and alive(ctd):
            os.kill(ctd, signal.SIGTERM)
            if not _wait_gone(ctd, 5):
                os.kill(ctd, signal.SIGKILL)
                _wait_gone(ctd, 5)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None


def _pids_mentioning(path):
    """Pids whose command line holds path (a directory of the test's own)."""
    out, key = [], path.encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
            if key in f.read():
                out.append(int(pid))
    return out


class Swarm:
    """count (1 or 3) dockerd in namespaces of the test's own, one swarm
    (see the module doc). nodes[0] is the manager. With three nodes,
    self.client runs commands in the client namespace; with one, the node's
    own namespace is the client's (`self.client` is the node's Netns)."""

    PREFIX = "10.131.0"
    POOL = "10.132.0.0/16"     # overlay subnets; the namespaces are ours

    def __init__(self, count=3, berth=None):
        assert count in (1, 3)
        self.count = count
        self.berth = berth
        self.root = None
        self.nets = []
        self.nodes = []
        self.client = None

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def node(self, n):
        return self.nodes[n - 1]

    @property
    def manager(self):
        return self.nodes[0]

    def netns(self, node):
        """The Netns (netns_util) a node runs in."""
        return next(x for x in self.nets if x.name == node.ns)

    def _net_up(self, tag):
        import netns_util as nu
        if self.count == 1:
            ns = nu.Netns(tag + "n1")
            self.nets.append(ns)
            self.nodes.append(Node(1, self.root, ns.name, "127.0.0.1"))
            self.client = ns
            return
        sw = nu.Netns(tag + "sw")
        self.nets.append(sw)
        sw.ip("link", "add", "br0", "type", "bridge")
        sw.ip("link", "set", "br0", "up")
        for i, name in ((1, "n1"), (2, "n2"), (3, "n3"), (50, "c")):
            ns = nu.Netns(tag + name)
            self.nets.append(ns)
            # The veth is made inside the bridge's namespace and its peer
            # moved straight into the node's: never in the root namespace.
            sw.ip("link", "add", f"v-{name}", "type", "veth", "peer", "name", "eth0",
                  "netns", ns.name)
            sw.ip("link", "set", f"v-{name}", "master", "br0")
            sw.ip("link", "set", f"v-{name}", "up")
            addr = f"{self.PREFIX}.{10 + i if i < 50 else i}"
            ns.ip("addr", "add", addr + "/24", "dev", "eth0")
            ns.ip("link", "set", "eth0", "up")
            if name == "c":
                self.client, self.client.addr = ns, addr
            else:
                self.nodes.append(Node(i, self.root, ns.name, addr))

    def start(self):
        t0 = time.monotonic()
        self.root = tempfile.mkdtemp(prefix=f"berth-swarm{self.count}.",
                                     dir=os.environ.get("BERTH_TEST_ROOT") or "/tmp")
        os.chmod(self.root, 0o755)
        os.makedirs(os.path.join(self.root, "cli"))
        self._net_up(f"bsw{os.getpid() % 100000}")
        self.assert_no_default_route()
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            n.wait_up()
        t1 = time.monotonic()
        tar = os.path.join(self.root, "busybox.tar")
        _busybox_tar(tar)
        for n in self.nodes:
            with open(tar, "rb") as f:
                r = subprocess.run([dk.DOCKER, "import", "--change", 'CMD ["/bin/hostweb"]',
                                    "-", WEB_IMAGE], stdin=f, env=n.env, capture_output=True,
                                   timeout=120)
            if r.returncode != 0:
                raise dk.DockerError(f"node{n.n}: docker import: {r.stderr.decode()}")
        import_berth_image([n.url for n in self.nodes], self.berth)
        t2 = time.monotonic()
        m = self.manager
        m.docker("swarm", "init", "--advertise-addr", m.addr, "--default-addr-pool", self.POOL)
        if self.count > 1:
            token = m.docker("swarm", "join-token", "-q", "worker")
            for n in self.nodes[1:]:
                n.docker("swarm", "join", "--advertise-addr", n.addr, "--token", token,
                         f"{m.addr}:2377", timeout=60)
        ok = u.poll_until(lambda: m.docker("node", "ls", "--format", "{{.Status}}", check=False)
                          .split().count("Ready") == self.count, 30, 0.2)
        if not ok:
            raise dk.DockerError(f"the swarm has not {self.count} Ready nodes:\n"
                                 + m.docker("node", "ls", check=False))
        self.timing = (f"daemons {t1 - t0:.1f} s, images {t2 - t1:.1f} s, "
                       f"swarm init+join {time.monotonic() - t2:.1f} s")

    def assert_no_default_route(self):
        """No namespace of ours may send anywhere but the test's bridge."""
        for ns in self.nets:
            for fam in ("-4", "-6"):
                out = ns.ip(fam, "route", "show", "default").strip()
                if out:
                    raise AssertionError(f"netns {ns.name} has a default route: {out}")

    def node_ids(self):
        """{node id: hostname} (from the manager)."""
        out = self.manager.docker("node", "ls", "--format", "{{.ID}} {{.Hostname}}")
        return dict(l.split() for l in out.splitlines())

    def close(self):
        for n in reversed(self.nodes):
            with contextlib.suppress(Exception):
                n.close(self.root)
        for ns in reversed(self.nets):
            with contextlib.suppress(Exception):
                ns.close()
        self.nodes, self.nets, self.client = [], [], None
        if self.root:
            # The nodes' mounts lived in their own mount namespaces, gone
            # with their processes; anything under our root here is a leak.
            with open("/proc/self/mounts") as f:
                left = [l.split()[1] for l in f if l.split()[1].startswith(self.root)]
            for m in sorted(left, reverse=True):
                subprocess.run(["umount", "-l", m], capture_output=True)
            if os.environ.get("BERTH_E2E_KEEP_DOCKERD_LOG"):
                for i in range(1, self.count + 1):
                    with contextlib.suppress(OSError):
                        shutil.copy(os.path.join(self.root, f"n{i}", "dockerd.log"),
                                    os.environ["BERTH_E2E_KEEP_DOCKERD_LOG"] + f".n{i}")
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


class SingleSwarm(Swarm):
    """One node: a dockerd in a network namespace of the test's own with
    only lo (no default route), swarm advertised on 127.0.0.1."""

    def __init__(self, berth=None):
        super().__init__(1, berth)


class Swarm3(Swarm):
    """Three nodes, a bridge and a client namespace (see the module doc)."""

    def __init__(self, berth=None):
        super().__init__(3, berth)
