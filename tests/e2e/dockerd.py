"""A private Docker daemon for berth's end-to-end tests (Python 3.11 stdlib).

    with PrivateDockerd() as d:
        d.docker("run", "-d", "--name", "web", d.IMAGE)   # serves its hostname
        d.compose("lab", "compose/lab.yml", "up", "-d", "--scale", "api=3")
        d.restart()                                       # dockerd only

The daemon has its own data and exec roots, socket, containerd namespace,
bridge (on a free 10.233.x.0/24) and address pool for user networks (a free
10.234-239.0.0/16 cut in /24s), and runs with --iptables=false
--ip6tables=false and live-restore (so its containers keep running while it
is restarted). Cleanup runs even when start-up or a test fails: containers
removed, dockerd stopped, whatever it started and left behind (containerd,
shims: found by our private root in their command lines) killed by pid, our
mounts unmounted, our bridges deleted, the root removed.

The image IMAGE is a static busybox imported locally (no registry is
reachable) with two servers:
  hostweb [PORT]  HTTP on PORT (default 80): GET / answers the hostname
                  (the 12-digit short id unless --hostname was given)
  echo7 [PORT]    tests/udp_echo -t: TCP and UDP echo on PORT (default 7),
                  only when a static udp_echo was built (HAVE_ECHO)
Both exit at once on SIGTERM, so docker stop takes milliseconds.

Run as a script it records real Engine API answers as fixtures:
    python3 dockerd.py record tests/fixtures/docker
"""

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
IMAGE = "berth-test/busybox"
API = "v1.41"   # Engine 20.10, the oldest berth supports

# Roots go under $BERTH_TEST_ROOT when it is set (.ci/run sets it; its last
# sweep stops by pid what the pidfiles there name), else under /tmp.
ROOT_PREFIX = "berth-dockerd."

HOSTWEB = """#!/bin/sh
# Serves this container's hostname over HTTP on port ${1:-80}.
mkdir -p /www
hostname > /www/index.html
httpd -f -p "${1:-80}" -h /www &
trap 'kill $! 2>/dev/null; exit 0' TERM INT
wait
"""

ECHO7 = """#!/bin/sh
# TCP and UDP echo on port ${1:-7}.
udp_echo -t "${1:-7}" &
trap 'kill $! 2>/dev/null; exit 0' TERM INT
wait
"""


def _which(*names):
    for n in names:
        p = n if os.path.isabs(n) else shutil.which(n)
        if p and os.access(p, os.X_OK):
            return p
    return None


# The CLI matching the daemon (Debian's docker.io) when there is one.
DOCKER = _which("/usr/bin/docker", "docker")
DOCKERD = _which("dockerd")
COMPOSE = _which("docker-compose")
BUSYBOX = _which("busybox")
UDP_ECHO_STATIC = os.environ.get("UDP_ECHO_STATIC") or next(
    (p for p in (os.path.join(REPO, d, "tests", "e2e", "udp_echo_static")
                 for d in ("build-dk", "build")) if os.access(p, os.X_OK)), "")


def _is_static(path):
    r = subprocess.run(["ldd", path], capture_output=True)
    return r.returncode != 0


def require(compose=False):
    """SkipTest unless root with dockerd, docker, a static busybox (and
    docker-compose when compose)."""
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root")
    if not DOCKERD or not DOCKER:
        raise unittest.SkipTest("dockerd/docker not installed (apt-get install docker.io)")
    if compose and not COMPOSE:
        raise unittest.SkipTest("docker-compose not installed (apt-get install docker-compose)")
    if not BUSYBOX or not _is_static(BUSYBOX):
        raise unittest.SkipTest("no static busybox (apt-get install busybox-static)")
    if not _which("ip"):
        raise unittest.SkipTest("iproute2 not installed")


def have_echo():
    return bool(UDP_ECHO_STATIC) and os.access(UDP_ECHO_STATIC, os.X_OK) \
        and _is_static(UDP_ECHO_STATIC)


class DockerError(RuntimeError):
    pass


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(self.timeout)
            s.connect(self._path)
        except BaseException:
            s.close()
            raise
        self.sock = s


def _routes_v4():
    r = subprocess.run(["ip", "-4", "route", "show", "table", "all"],
                       capture_output=True, text=True)
    a = subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True)
    return r.stdout + a.stdout


class PrivateDockerd:
    def __init__(self, live_restore=True):
        self.live_restore = live_restore
        self.root = None
        self.proc = None
        self.bridge = None
        self.networks = set()     # ids of networks this daemon made
        self._log = None

    # ------------------------------------------------------------ lifecycle

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        self.root = tempfile.mkdtemp(prefix=ROOT_PREFIX,
                                     dir=os.environ.get("BERTH_TEST_ROOT") or "/tmp")
        os.chmod(self.root, 0o755)
        self.sock = os.path.join(self.root, "docker.sock")
        self.url = "unix://" + self.sock
        self.logpath = os.path.join(self.root, "dockerd.log")
        self.env = dict(os.environ, DOCKER_HOST=self.url,
                        DOCKER_CONFIG=os.path.join(self.root, "cli"),
                        COMPOSE_HTTP_TIMEOUT="120")
        for k in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
            self.env.pop(k, None)
        os.makedirs(os.path.join(self.root, "cli"))
        self._make_bridge()
        pool = self._free_pool()
        cfg = {"live-restore": self.live_restore,
               "default-address-pools": [{"base": pool, "size": 24}]}
        self.config = os.path.join(self.root, "daemon.json")
        with open(self.config, "w") as f:
            json.dump(cfg, f)
        self._spawn()
        self._import_image()

    def _make_bridge(self):
        self.bridge = f"berthdk{os.getpid()}"[:15]
        used = _routes_v4()
        for n in range(20, 250):
            if f"10.233.{n}." not in used:
                self.subnet = f"10.233.{n}.0/24"
                self.gateway = f"10.233.{n}.1"
                break
        else:
            raise DockerError("no free 10.233.x.0/24 for the test bridge")
        subprocess.run(["ip", "link", "add", "name", self.bridge, "type", "bridge"],
                       check=True)
        subprocess.run(["ip", "addr", "add", self.gateway + "/24", "dev", self.bridge],
                       check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)

    def _free_pool(self):
        used = _routes_v4()
        for b in range(234, 240):
            if f"10.{b}." not in used:
                return f"10.{b}.0.0/16"
        raise DockerError("no free 10.234-239.0.0/16 for user networks")

    def _spawn(self):
        ns = f"berth-dk-{os.getpid()}"
        argv = [DOCKERD, "--data-root", os.path.join(self.root, "data"),
                "--exec-root", os.path.join(self.root, "exec"),
                "--config-file", self.config,
                "--pidfile", os.path.join(self.root, "dockerd.pid"),
                "-H", self.url,
                "--containerd-namespace", ns,
                "--containerd-plugins-namespace", ns + "-plugins",
                "--bridge", self.bridge,
                "--iptables=false", "--ip6tables=false",
                "--ip-forward=false", "--ip-masq=false"]
        self._log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ping(60)

    def ping(self):
        try:
            status, _, _ = self.api("/_ping", timeout=2)
            return status == 200
        except OSError:
            return False

    def wait_ping(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise DockerError(f"dockerd exited with {self.proc.returncode}:\n"
                                  + self.log_tail())
            if self.ping():
                return
            time.sleep(0.1)
        raise DockerError(f"dockerd did not answer /_ping within {timeout} s:\n"
                          + self.log_tail())

    def stop_daemon(self, timeout=30):
        """Stops dockerd only (with live-restore its containers keep running)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def restart(self):
        self.stop_daemon()
        self._spawn()

    def close(self):
        if self.root is None:
            return
        with contextlib.suppress(Exception):
            if self.proc is not None and self.proc.poll() is None and self.ping():
                self.networks |= set(self.docker("network", "ls", "-q", "--no-trunc",
                                                 timeout=30).split())
                ids = self.docker("ps", "-aq", timeout=30).split()
                if ids:
                    self.docker("rm", "-f", *ids, timeout=60, check=False)
                self.docker("network", "prune", "-f", timeout=30, check=False)
        with contextlib.suppress(Exception):
            self.stop_daemon()
        # What this daemon started and left behind: by our root in argv.
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    args = f.read()
            except OSError:
                continue
            if self.root.encode() in args:
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)
        with contextlib.suppress(OSError), open("/proc/self/mounts") as f:
            mounts = [l.split()[1] for l in f if l.split()[1].startswith(self.root)]
        for m in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        links = [self.bridge] + ["br-" + n[:12] for n in self.networks]
        for link in links:
            if link and os.path.exists(f"/sys/class/net/{link}"):
                subprocess.run(["ip", "link", "del", link], capture_output=True)
        if os.environ.get("BERTH_E2E_KEEP_DOCKERD_LOG"):
            with contextlib.suppress(OSError):
                shutil.copy(self.logpath, os.environ["BERTH_E2E_KEEP_DOCKERD_LOG"])
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def log_tail(self, n=40):
        try:
            with open(self.logpath, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no dockerd log)"

    # ------------------------------------------------------------ image

    def _import_image(self):
        img = os.path.join(self.root, "img")
        os.makedirs(os.path.join(img, "bin"))
        os.makedirs(os.path.join(img, "www"))
        os.makedirs(os.path.join(img, "tmp"))
        shutil.copy(BUSYBOX, os.path.join(img, "bin", "busybox"))
        for a in ("sh", "httpd", "nc", "sleep", "cat", "echo", "hostname", "mkdir",
                  "kill", "ls", "ip", "wget", "true", "nslookup"):
            os.symlink("busybox", os.path.join(img, "bin", a))
        for name, text in (("hostweb", HOSTWEB), ("echo7", ECHO7)):
            p = os.path.join(img, "bin", name)
            with open(p, "w") as f:
                f.write(text)
            os.chmod(p, 0o755)
        self.have_echo = have_echo()
        if self.have_echo:
            shutil.copy(UDP_ECHO_STATIC, os.path.join(img, "bin", "udp_echo"))
        tar = subprocess.Popen(["tar", "-C", img, "-c", "."], stdout=subprocess.PIPE)
        r = subprocess.run([DOCKER, "import", "--change", 'CMD ["/bin/hostweb"]',
                            "-", IMAGE], stdin=tar.stdout, env=self.env,
                           capture_output=True, timeout=120)
        tar.stdout.close()
        tar.wait()
        if r.returncode != 0:
            raise DockerError("docker import failed: " + r.stderr.decode())

    # ------------------------------------------------------------ clients

    def docker(self, *args, check=True, timeout=60):
        """Runs the docker CLI against this daemon; returns stdout stripped."""
        r = subprocess.run([DOCKER] + [str(a) for a in args], env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise DockerError(f"docker {' '.join(map(str, args))}: exit {r.returncode}: "
                              + r.stderr.decode("utf-8", "replace").strip())
        return r.stdout.decode("utf-8", "replace").strip()

    def compose(self, project, file, *args, check=True, timeout=120):
        """docker-compose -p project -f file ARGS (file relative to compose/)."""
        path = file if os.path.isabs(file) else os.path.join(HERE, "compose", file)
        r = subprocess.run([COMPOSE, "--ansi", "never", "-p", project, "-f", path]
                           + [str(a) for a in args], env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout)
        out = r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")
        if check and r.returncode != 0:
            raise DockerError(f"docker-compose {' '.join(args)}: exit {r.returncode}: {out}")
        return out

    def run(self, name, *cmd, args=(), hostname=None):
        """docker run -d --name name [args] IMAGE [cmd]; returns the full id."""
        argv = ["run", "-d", "--name", name]
        if hostname:
            argv += ["--hostname", hostname]
        return self.docker(*argv, *args, IMAGE, *cmd)

    def api(self, path, method="GET", timeout=10):
        """One request on the API socket: (status, headers dict, body bytes)."""
        c = _UnixHTTPConnection(self.sock, timeout)
        try:
            c.request(method, path)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def api_json(self, path, timeout=10):
        status, _, body = self.api(path, timeout=timeout)
        if status != 200:
            raise DockerError(f"GET {path}: {status} {body[:200]!r}")
        return json.loads(body)

    def inspect(self, name):
        return self.api_json(f"/{API}/containers/{name}/json")

    def ip(self, name, network=None):
        nets = self.inspect(name)["NetworkSettings"]["Networks"]
        if network is None:
            network = next(iter(nets))
        return nets[network]["IPAddress"]

    def short_id(self, name):
        return self.inspect(name)["Id"][:12]

    def running(self, **labels):
        """Short ids (= hostnames) of running containers with these labels."""
        args = ["ps", "-q"]
        for k, v in labels.items():
            args += ["--filter", f"label={k}={v}"]
        return set(self.docker(*args).split())

    def service_replicas(self, project, service):
        return self.running(**{"com.docker.compose.project": project,
                               "com.docker.compose.service": service})

    def rm(self, *names):
        if names:
            self.docker("rm", "-f", *names, check=False)


# ---------------------------------------------------------------- fixtures

def _raw_events(d, since, until):
    """The /events body between two times, still chunk-framed as on the wire."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(d.sock)
    q = json.dumps({"type": ["container", "network"]})
    s.sendall(f"GET /{API}/events?since={since}&until={until}&filters={quote(q)} "
              "HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
    data = bytearray()
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
        if data.endswith(b"\r\n0\r\n\r\n"):
            break
    s.close()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return head, body


def _dechunk(body):
    out = bytearray()
    while body:
        size, _, rest = body.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out += rest[:n]
        body = rest[n + 2:]
    return bytes(out)


def record(outdir):
    """Records real answers of this daemon into outdir (see the README list
    printed at the end)."""
    require(compose=True)
    os.makedirs(outdir, exist_ok=True)
    written = []

    def put(name, data):
        p = os.path.join(outdir, name)
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(p, mode) as f:
            if isinstance(data, bytes):
                f.write(data)
            else:
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")
        written.append(name)

    with PrivateDockerd() as d:
        status, headers, body = d.api("/_ping")
        put("ping.json", {"status": status, "body": body.decode(),
                          "headers": {k: v for k, v in headers.items()
                                      if k in ("api-version", "docker-experimental",
                                               "ostype", "server")}})
        t0 = int(time.time())
        d.compose("lab", "lab.yml", "up", "-d", "--scale", "api=3")
        d.docker("network", "create", "backend")
        d.run("web")
        d.docker("network", "connect", "--alias", "db", "backend", "web")
        d.run("oneoff", args=["--label", "com.docker.compose.project=lab",
                              "--label", "com.docker.compose.service=api",
                              "--label", "com.docker.compose.oneoff=True"])
        put("containers_list.json", d.api_json(f"/{API}/containers/json"))
        put("networks_list.json", d.api_json(f"/{API}/networks"))
        put("inspect_compose_replica.json", d.inspect("lab_api_2"))
        put("inspect_two_networks_alias.json", d.inspect("web"))
        d.docker("rename", "web", "web2")
        d.docker("network", "disconnect", "backend", "web2")
        d.docker("stop", "lab_api_3")
        d.docker("restart", "lab_api_1")
        d.docker("rm", "-f", "web2", "oneoff")
        d.docker("network", "rm", "backend")
        d.compose("lab", "lab.yml", "down", "-t", "1")
        time.sleep(1.1)   # events of the last second are complete
        head, body = _raw_events(d, t0, int(time.time()))
        put("events_chunked.raw", body)
        put("events.jsonl", _dechunk(body))
        put("events_response_head.txt", head + b"\r\n")
    print("wrote to", outdir + ":", " ".join(written))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "record":
        record(sys.argv[2])
    else:
        sys.exit("usage: dockerd.py record OUTDIR")
