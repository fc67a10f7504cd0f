"""A fake Docker Engine API on a unix socket, for the end-to-end suites
that need no dockerd (test_docker_faults.py, test_labels.py).

FakeDocker answers berth's requests (GET /_ping, /v{ver}/events,
/containers/json, /containers/{id}/json, /networks) with bodies built from
the real answers recorded in tests/fixtures/docker. Containers are scripted
by name; their addresses are meant to be loopback (127.0.0.x) so berth can
really connect to backends the test runs there. A container can be removed
(gone: inspect says 404) or stopped (inspect says not running, the list
leaves it out), and faults can be set per endpoint, among them answers
that never end (a body, a header block, an event line) and floods of
events. bulk(n) adds n more containers at once, their list and inspect
answers made from templates, for the scale test (test_docker_scale.py).
swarm_mode() (fakeswarm.py's _SwarmMixin) adds a scripted Docker Swarm: the role
by /info (and /_ping's Swarm header), overlays, nodes, services, tasks,
docker_gwbridge and this node's task containers, a network's verbose
view, bulk tasks and service events (test_swarm_api.py); off, nothing
answers differently. backends() and who() are the greeting backends and the client that asks
which one it reached; rss_kib() reads a process's resident memory.
"""

import copy
import hashlib
import http.server
import json
import os
import queue
import re
import shutil
import socket
import socketserver
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402
from fakeswarm import _SwarmMixin  # noqa: E402

FIX = os.path.join(u.REPO, "tests", "fixtures", "docker")
SETTLE_S = 15.0


def _fixture(name):
    with open(os.path.join(FIX, name)) as f:
        return json.load(f)


def chunk(data):
    return b"%x\r\n" % len(data) + data + b"\r\n"


def _hexid(name):
    return hashlib.sha256(name.encode()).hexdigest()


def sanitized():
    """Whether the berth under test is an AddressSanitizer build (linked
    with libasan): slower, and its RSS counts ASan's own memory."""
    try:
        with open(u.BERTH, "rb") as f:
            return b"libasan.so" in f.read()
    except OSError:
        return False


def asan_env():
    """The environment for a berth whose RSS a test watches: ASan keeps
    up to 256 MB of freed memory in quarantine, which would read as berth
    holding it; 16 MB still catches a use after free."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"),
                                                 "quarantine_size_mb=16"]))
    return env


def rss_kib(pid):
    """VmRSS of pid in KiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# ---------------------------------------------------------------- the fake

class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128      # berth opens up to 16 connections at once

    def handle_error(self, request, client_address):
        # berth hanging up on an answer it no longer wants is fine.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version, sys_version = "Docker/20.10.24", "(fake)"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.fake._handle(self)


class FakeDocker(_SwarmMixin):
    """A scripted Docker Engine API on a unix socket. Containers are
    {name: (id, {network: (ip, aliases)}, labels)}; the names in stopped
    exist but do not run (inspect: Running false, no address; the list, which
    berth asks without all=1, leaves them out). Faults are per endpoint
    (ping, events, list, inspect, networks): (kind, text)."""

    def __init__(self, version="1.41", path=None, start=True):
        self.dir = tempfile.mkdtemp(prefix="berth-fakedocker.")
        self.path = path or os.path.join(self.dir, "docker.sock")
        self.url = "unix://" + self.path
        self.version = version
        self.lock = threading.Lock()
        self.containers = {}
        self.stopped = set()
        self.faults = {}
        self.requests = []          # (monotonic time, endpoint key, raw path)
        self.streams = []           # queues of live /events streams
        self.streams_opened = 0
        self.bulk_ids = {}          # id -> (name, ip) of the bulk containers
        self.bulk_entries = {}      # id -> its list entry (JSON text)
        self.bulk_list = b""        # those joined by commas
        self.stopping = False
        self._tmpl_inspect = _fixture("inspect_compose_replica.json")
        self._tmpl_list = _fixture("containers_list.json")[0]
        self.server = None
        self.paused = False
        self.swarm = None           # FakeSwarm once swarm_mode() is called
        if start:
            self.start()

    def start(self):
        self.paused = False
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.server = _Server(self.path, _Handler)
        self.server.fake = self
        self._t = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                   daemon=True)
        self._t.start()

    def pause(self):
        """Goes away as a stopped dockerd does: live event streams end and
        the socket file is removed (connecting fails with ENOENT); start()
        comes back with the same containers."""
        self.paused = True
        if os.path.exists(self.path):
            os.unlink(self.path)      # no new connection from here on
        self.send("close")            # before server_close waits for streams
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def close(self):
        self.stopping = True
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- scripting

    def add(self, name, ip, networks=None, labels=None):
        nets = networks or {"bridge": (ip, None)}
        with self.lock:
            self.containers[name] = (_hexid(name), nets, labels or {})
            self.stopped.discard(name)
        return _hexid(name)

    def remove(self, name):
        with self.lock:
            self.containers.pop(name, None)
            self.stopped.discard(name)

    def stop_container(self, name):
        """name keeps existing, not running (as after docker stop)."""
        with self.lock:
            assert name in self.containers, name
            self.stopped.add(name)

    def start_container(self, name):
        with self.lock:
            assert name in self.containers, name
            self.stopped.discard(name)

    def fault(self, key, kind, text=""):
        with self.lock:
            self.faults[key] = (kind, text)

    def clear(self):
        with self.lock:
            self.faults.clear()

    def faulty(self, key, fault):
        """Whether fault is still the one set for key (endless answers run
        until it is cleared)."""
        with self.lock:
            return not self.stopping and self.faults.get(key) == fault

    def bulk(self, n, prefix="bulk"):
        """n running containers more, named <prefix>000001..., one network
        each ("bridge", 127.x.y.z: nothing listens there). Their list and
        inspect answers come from templates: 100,000 take a second."""
        ltmpl = json.dumps(self._list_entry("@N@", "@I@", {"bridge": ("@A@", None)}, {}))
        itmpl = json.dumps(self._inspect("@N@", "@I@", {"bridge": ("@A@", None)}, {}))
        ids, entries = {}, {}
        for i in range(1, n + 1):
            name = f"{prefix}{i:06d}"
            cid = _hexid(name)
            ip = f"127.{1 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"
            ids[cid] = (name, ip)
            entries[cid] = ltmpl.replace("@N@", name).replace("@I@", cid).replace("@A@", ip)
        with self.lock:
            self._itmpl = itmpl
            self.bulk_ids.update(ids)
            self.bulk_entries.update(entries)
            self.bulk_list = ",".join(self.bulk_entries.values()).encode()
        return list(ids)

    def bulk_remove(self, ids):
        """The bulk containers ids are gone (inspect: 404, not listed)."""
        with self.lock:
            for cid in ids:
                self.bulk_ids.pop(cid, None)
                self.bulk_entries.pop(cid, None)
            self.bulk_list = ",".join(self.bulk_entries.values()).encode()

    def send(self, *items):
        """To every live /events stream: dict (one JSON line in its own
        chunk), bytes (written as they are: the caller frames them), one
        of "truncate", "badchunk", "close", "end" (the stream stops), or
        ("flood", n, same): n start events, in chunks of 500, for the
        container "web" when same, else for n different unknown ids."""
        with self.lock:
            qs = list(self.streams)
        for q in qs:
            for it in items:
                q.put(it)
        return len(qs)

    def event(self, action, name, typ="container", network=None):
        cid = _hexid(name)
        now = time.time()
        if typ == "container":
            # dockerd puts the container's labels among the attributes.
            with self.lock:
                labels = dict(self.containers.get(name, (None, None, {}))[2])
            attrs = dict(labels, image="berth-test/busybox", name=name)
            return {"status": action, "id": cid, "from": "berth-test/busybox",
                    "Type": "container", "Action": action,
                    "Actor": {"ID": cid, "Attributes": attrs},
                    "scope": "local", "time": int(now), "timeNano": int(now * 1e9)}
        return {"Type": "network", "Action": action,
                "Actor": {"ID": _hexid("net-" + network),
                          "Attributes": {"container": cid, "name": network,
                                         "type": "bridge"}},
                "scope": "local", "time": int(now), "timeNano": int(now * 1e9)}

    def wait_stream(self, opened_before, timeout=SETTLE_S):
        """Waits for an /events stream opened after the count opened_before."""
        return u.poll_until(lambda: self.streams_opened > opened_before and self.streams,
                            timeout, 0.02)

    def paths(self, key=None):
        with self.lock:
            return [(t, p) for t, k, p in self.requests if key is None or k == key]

    # ---- answers

    def _inspect(self, name, cid, nets, labels, running=True):
        d = copy.deepcopy(self._tmpl_inspect)
        ep0 = next(iter(d["NetworkSettings"]["Networks"].values()))
        d["Id"], d["Name"] = cid, "/" + name
        d["Config"]["Hostname"] = cid[:12]
        d["Config"]["Labels"] = dict(labels)
        if running:
            d["State"].update(Running=True, Status="running")
        else:                     # what dockerd says of an exited container
            d["State"].update(Running=False, Status="exited", Pid=0, ExitCode=137,
                              FinishedAt="2026-11-28T05:15:00.000000000Z")
        out = {}
        for net, (ip, aliases) in nets.items():
            ep = copy.deepcopy(ep0)
            ep.update(IPAddress=ip if running else "", Gateway="",
                      IPPrefixLen=8 if running else 0, Aliases=aliases,
                      NetworkID=_hexid("net-" + net), GlobalIPv6Address="")
            if not running:
                ep.update(EndpointID="", MacAddress="")
            out[net] = ep
        d["NetworkSettings"]["Networks"] = out
        d["NetworkSettings"]["IPAddress"] = \
            nets.get("bridge", ("", None))[0] if running else ""
        return d

    def _list_entry(self, name, cid, nets, labels):
        d = copy.deepcopy(self._tmpl_list)
        ep0 = next(iter(d["NetworkSettings"]["Networks"].values()))
        d.update(Id=cid, Names=["/" + name], Labels=dict(labels), State="running")
        d["NetworkSettings"]["Networks"] = {
            net: dict(copy.deepcopy(ep0), IPAddress=ip, Gateway="", IPPrefixLen=8,
                      NetworkID=_hexid("net-" + net))
            for net, (ip, _) in nets.items()}
        return d

    def _networks(self):
        names = {"bridge", "host", "none"}
        with self.lock:
            for _, nets, _ in self.containers.values():
                names |= set(nets)
        return [{"Name": n, "Id": _hexid("net-" + n), "Driver": "bridge", "Scope": "local",
                 "IPAM": {"Driver": "default", "Options": None,
                          "Config": [{"Subnet": "127.0.0.0/8", "Gateway": "127.0.0.1"}]
                          if n not in ("host", "none") else []}}
                for n in sorted(names)]

    def _reply(self, h, status, body, ctype="application/json", extra=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Api-Version", self.version)
        for k, v in extra:
            h.send_header(k, v)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    ROUTES = [("ping", r"/_ping"), ("events", r"/v\d+\.\d+/events"),
              ("list", r"/v\d+\.\d+/containers/json"),
              ("inspect", r"/v\d+\.\d+/containers/([^/]+)/json"),
              ("networks", r"/v\d+\.\d+/networks")]

    def _handle(self, h):
        if self.paused:     # a connection kept alive from before: gone too
            h.close_connection = True
            return None
        path = urllib.parse.urlsplit(h.path).path
        key, m = next(((k, hit) for k, rx in self.ROUTES if (hit := re.fullmatch(rx, path))),
                      ("other", None))
        query = urllib.parse.unquote(urllib.parse.urlsplit(h.path).query)
        skey, sm = self._swarm_key(path, query)
        if skey:
            key, m = skey, sm
        with self.lock:
            self.requests.append((time.monotonic(), key, h.path))
            fault = self.faults.get(key)
        if fault and fault[0] != "endlessline":     # that one is a 200 stream
            return self._fault(h, key, *fault)
        if key == "ping":
            return self._reply(h, 200, b"OK", "text/plain; charset=utf-8", self._ping_swarm())
        if skey:
            return self._swarm_answer(h, key, m)
        if key == "events":
            return self._events(h)
        with self.lock:
            cs = dict(self.containers)
            stopped = set(self.stopped)
        if key == "list":
            body = json.dumps([self._list_entry(n, *v) for n, v in cs.items()
                               if n not in stopped]).encode()
            if self.bulk_list:
                body = b"[" + self.bulk_list + (b"," + body[1:] if len(body) > 2 else b"]")
            return self._reply(h, 200, body)
        if key == "inspect":
            want = urllib.parse.unquote(m.group(1))
            hit = self.bulk_ids.get(want)
            if hit:
                return self._reply(h, 200, self._itmpl.replace("@N@", hit[0])
                                   .replace("@I@", want).replace("@A@", hit[1]).encode())
            for n, v in cs.items():
                if want in (n, v[0], v[0][:12]):
                    return self._reply(h, 200, self._inspect(n, *v,
                                                             running=n not in stopped))
            return self._reply(h, 404, {"message": f"No such container: {want}"})
        if key == "networks":
            return self._reply(h, 200, self._networks())
        return self._reply(h, 404, {"message": "page not found"})

    def _fault(self, h, key, kind, text):
        if kind in ("404", "500"):
            return self._reply(h, int(kind), {"message": text})
        if kind == "plain":
            return self._reply(h, 500, (text + "\n").encode(), "text/plain; charset=utf-8")
        if kind == "garbage":
            return self._reply(h, 200, text.encode() or b'{"Id": "12", [[[ ,,, not json')
        if kind == "close":
            h.close_connection = True
            return None
        if kind in self.ENDLESS:
            return self._endless(h, key, kind, text)
        raise ValueError(kind)

    # Answers that never end, until the fault is cleared (or the peer hangs
    # up): a 500 with an endless body, chunked or under a huge
    # Content-Length; a 500 whose body stalls; a 200 whose header block
    # never ends; a 200 list whose first entry never ends.
    ENDLESS = ("endless500", "endless500cl", "stall500", "endlessheaders",
               "endlessjson")

    def _endless(self, h, key, kind, text):
        fault = (kind, text)
        h.close_connection = True
        filler = (text.encode() or b"endless") * 64 + b" "
        try:
            if kind == "endlessheaders":
                h.wfile.write(b"HTTP/1.1 200 OK\r\nApi-Version: %s\r\n" % self.version.encode())
                while self.faulty(key, fault):
                    h.wfile.write(b"X-Endless: " + filler + b"\r\n")
                return
            h.send_response(200 if kind == "endlessjson" else 500)
            h.send_header("Api-Version", self.version)
            h.send_header("Content-Type", "application/json")
            if kind == "endless500":
                h.send_header("Transfer-Encoding", "chunked")
            else:
                h.send_header("Content-Length", str(10 ** 15))
            h.end_headers()
            head = {"endlessjson": b'[{"Id": "0123456789ab", "Junk": "',
                    "stall500": b'{"message": "' + text.encode() + b'"'}.get(
                        kind, b'{"message": "' + text.encode() + b' ')
            wrap = chunk if kind == "endless500" else bytes
            h.wfile.write(wrap(head))
            h.wfile.flush()
            while self.faulty(key, fault):
                if kind == "stall500":
                    time.sleep(0.05)
                else:
                    h.wfile.write(wrap(filler * 16))
        except OSError:
            pass

    CUTS = {"truncate": b'400\r\n{"status":"die","id":"0123', "end": b"0\r\n\r\n",
            "badchunk": b"zz-not-hex\r\n{}\r\n", "close": b""}

    def _flood(self, h, n, same):
        tmpl = json.dumps(self.event("start", "web")).replace(_hexid("web"), "@I@")
        now = int(time.time())
        for base in range(0, n, 500):
            lines = []
            for i in range(base, min(n, base + 500)):
                cid = _hexid("web") if same else f"{now:08x}{i:056x}"
                lines.append(tmpl.replace("@I@", cid))
            h.wfile.write(chunk(("\n".join(lines) + "\n").encode()))

    def _endless_line(self, h, key, fault):
        """A 200 event stream whose first line never ends, until the fault
        is cleared: then the line ends and the stream goes on as usual."""
        line = b"x" * 65536
        while self.faulty(key, fault):
            h.wfile.write(chunk(line))
        h.wfile.write(chunk(b"\n"))
        h.wfile.flush()

    def _events(self, h):
        with self.lock:
            fault = self.faults.get("events")
        q = queue.Queue()
        with self.lock:           # before the answer: berth may sync at once
            self.streams.append(q)
            self.streams_opened += 1
        h.close_connection = True
        try:
            h.send_response(200)
            h.send_header("Api-Version", self.version)
            h.send_header("Content-Type", "application/json")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            h.wfile.flush()
            if fault and fault[0] == "endlessline":
                self._endless_line(h, "events", fault)
            while not self.stopping:
                try:
                    it = q.get(timeout=0.05)
                except queue.Empty:
                    continue
                if isinstance(it, str):       # a cut: the stream stops
                    h.wfile.write(self.CUTS[it])
                    break
                if isinstance(it, tuple):
                    self._flood(h, *it[1:])
                    continue
                h.wfile.write(it if isinstance(it, bytes)
                              else chunk(json.dumps(it).encode() + b"\n"))
                h.wfile.flush()
            h.wfile.flush()
        except OSError:
            pass
        finally:
            with self.lock:
                self.streams.remove(q)


# ---------------------------------------------------------------- backends

def backends(*specs):
    """specs: (ip, greeting). Greeting servers on one common port; returns
    (port, [servers])."""
    for _ in range(50):
        servers = []
        try:
            port = 0
            for ip, greet in specs:
                s = u.EchoServer(host=ip, port=port, greet=greet.encode() + b"\n")
                servers.append(s)
                port = s.port
            return port, servers
        except OSError:
            for s in servers:
                s.close()
    raise RuntimeError("no common port for the backends")


def who(port, timeout=3.0):
    """The greeting of whoever berth connected us to, or closed/refused."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout)
    except ConnectionRefusedError:
        return "refused"
    except ConnectionResetError:      # accepted and reset before connect() returned
        return "closed"
    except OSError as e:
        return f"error: {e}"
    with s:
        s.settimeout(timeout)
        try:
            data = s.recv(100)
        except ConnectionResetError:
            return "closed"
        except socket.timeout:
            return "timeout"
    return data.decode("utf-8", "replace").strip() if data else "closed"

