"""FakeDocker's swarm mode (fakedocker.py mixes _SwarmMixin in): a
scripted Docker Swarm for test_swarm_api.py. Off unless swarm_mode() is
called: without it /info stays a 404 and /networks the bridge list, as
every other suite of the fake expects.

What it answers: the role by /info (and by /_ping's Swarm header, API
1.42+, when asked to), the overlay networks (GET /networks with the
driver=overlay filter), nodes, services and tasks (a manager's; a worker
gets 503 as from dockerd), docker_gwbridge's members and this node's
task containers (GET /containers/json with the task label filter), and a
network's verbose view (its services' VIPs and running tasks on ready
nodes). Every fault kind of FakeDocker.fault works per swarm endpoint.
"""

import hashlib
import json
import re
import time
import urllib.parse


def _hexid(name):
    return hashlib.sha256(name.encode()).hexdigest()


class FakeSwarm:
    """The swarm a FakeDocker answers for (test_swarm_api.py): this node's
    role (by /info, and by /_ping's Swarm header when ping_header), overlay
    networks, nodes, services and tasks. A task with a gwbridge address
    runs on this node: its container is among /containers/json's task
    containers and on docker_gwbridge. Fault keys: info, overlays,
    gwbridge, local (the task containers), services, nodes, tasks, view
    (a network's verbose view), as FakeDocker.fault's."""

    SELF = "node-self0000000000000000"
    OTHER = "node-b00000000000000000000"

    def __init__(self, role, ping_header):
        self.role = role              # "manager", "worker", "" (left)
        self.ping_header = ping_header
        self.nets = {}                # name -> network dict
        self.nodes = {self.SELF: "ready", self.OTHER: "ready"}
        self.services = {}            # name -> service dict
        self.tasks = {}               # task id -> task dict
        self.bulk_tasks = b""         # generated task JSON, comma-joined
        self.bulk_services = b""


def _sid(kind, name):
    return hashlib.sha256(f"{kind}:{name}".encode()).hexdigest()[:25]


class _SwarmMixin:
    SWARM_ROUTES = [("info", r"/v\d+\.\d+/info"), ("services", r"/v\d+\.\d+/services"),
                    ("nodes", r"/v\d+\.\d+/nodes"), ("tasks", r"/v\d+\.\d+/tasks"),
                    ("gwbridge", r"/v\d+\.\d+/networks/docker_gwbridge"),
                    ("view", r"/v\d+\.\d+/networks/([^/]+)")]

    def swarm_mode(self, role="manager", ping_header=False):
        """Turns the swarm on (or changes the role; "" = the node left)."""
        with self.lock:
            if self.swarm is None:
                self.swarm = FakeSwarm(role, ping_header)
            self.swarm.role, self.swarm.ping_header = role, ping_header
        return self.swarm

    def overlay(self, name, subnet, stack=None, ingress=False):
        net = {"Name": name, "Id": _sid("net", name), "Driver": "overlay",
               "Scope": "swarm", "Ingress": ingress, "Internal": False,
               "Labels": {"com.docker.stack.namespace": stack} if stack else {},
               "IPAM": {"Driver": "default", "Options": None,
                        "Config": [{"Subnet": subnet, "Gateway": subnet.split("/")[0]}]}}
        with self.lock:
            self.swarm.nets[name] = net
        return net["Id"]

    def node(self, node_id, state="ready"):
        with self.lock:
            self.swarm.nodes[node_id] = state

    def service(self, name, stack=None, mode="vip", vip=None, net=None, replicas=None):
        """vip: (network name, "127.0.0.200/8") in vip mode."""
        labels = {"com.docker.stack.namespace": stack} if stack else {}
        sid = _sid("svc", name)
        vips = [{"NetworkID": self.swarm.nets[vip[0]]["Id"], "Addr": vip[1]}] if vip else []
        smode = {"Replicated": {"Replicas": replicas}} if replicas is not None \
            else {"Global": {}}
        svc = {"ID": sid, "Version": {"Index": 10},
               "Spec": {"Name": name, "Labels": labels, "Mode": smode,
                        "EndpointSpec": {"Mode": mode}},
               "Endpoint": {"Spec": {"Mode": mode}, "VirtualIPs": vips}}
        with self.lock:
            self.swarm.services[name] = svc
        return sid

    def task(self, service, slot, net, ip, node=None, gwbridge=None, state="running"):
        """A task of service on overlay net at ip ("127.0.0.11/8"); with
        gwbridge ("127.0.0.51") it runs on this node."""
        tid = _sid("task", f"{service}.{slot}.{ip}")
        cid = _hexid("ctr-" + tid)
        t = {"ID": tid, "Version": {"Index": 11},
             "ServiceID": self.swarm.services[service]["ID"],
             "NodeID": FakeSwarm.SELF if gwbridge else (node or FakeSwarm.OTHER),
             "Slot": slot, "DesiredState": "running",
             "Status": {"State": state, "Message": state,
                        "ContainerStatus": {"ContainerID": cid, "PID": 1, "ExitCode": 0}},
             "NetworksAttachments": [{"Network": {"ID": self.swarm.nets[net]["Id"],
                                                  "Spec": {"Name": net}},
                                      "Addresses": [ip]}],
             "_service": service, "_gwbridge": gwbridge}
        with self.lock:
            self.swarm.tasks[tid] = t
        return tid

    def untask(self, tid):
        with self.lock:
            self.swarm.tasks.pop(tid, None)

    def swarm_bulk(self, nsvc, per, net, stack="big"):
        """nsvc services big_s00.. of per tasks each on overlay net, at
        127.(10+i).x.y (nothing listens): lists made from templates."""
        nid = self.swarm.nets[net]["Id"]
        svcs, tasks = [], []
        for i in range(nsvc):
            name = f"{stack}_s{i:02d}"
            sid = _sid("svc", name)
            svcs.append(json.dumps({
                "ID": sid, "Spec": {"Name": name,
                                    "Labels": {"com.docker.stack.namespace": stack},
                                    "Mode": {"Replicated": {"Replicas": per}},
                                    "EndpointSpec": {"Mode": "dnsrr"}},
                "Endpoint": {"Spec": {"Mode": "dnsrr"}}}))
            for k in range(per):
                tid = _sid("task", f"{name}.{k}")
                tasks.append(json.dumps({
                    "ID": tid, "ServiceID": sid, "NodeID": FakeSwarm.SELF, "Slot": k + 1,
                    "DesiredState": "running",
                    "Status": {"State": "running",
                               "ContainerStatus": {"ContainerID": _hexid(tid)}},
                    "NetworksAttachments": [{"Network": {"ID": nid},
                                             "Addresses": [f"127.{10 + i}.{k >> 8}."
                                                           f"{(k & 255) + 1}/8"]}]}))
        with self.lock:
            self.swarm.bulk_services = ",".join(svcs).encode()
            self.swarm.bulk_tasks = ",".join(tasks).encode()

    def swarm_event(self, name, action="update", typ="service"):
        """An event of type service (or node) for /events streams."""
        now = time.time()
        return {"Type": typ, "Action": action,
                "Actor": {"ID": _sid("svc", name), "Attributes": {"name": name}},
                "scope": "swarm", "time": int(now), "timeNano": int(now * 1e9)}

    # ---- answers

    def _swarm_key(self, path, query):
        """The swarm endpoint path is, or None (then the usual routes)."""
        if self.swarm is None:
            return None, None
        if re.fullmatch(r"/v\d+\.\d+/networks", path) and "overlay" in query:
            return "overlays", None
        if re.fullmatch(r"/v\d+\.\d+/containers/json", path) and \
                "com.docker.swarm.task.id" in query:
            return "local", None
        for k, rx in self.SWARM_ROUTES:
            if m := re.fullmatch(rx, path):
                return k, m
        return None, None

    def _ping_swarm(self):
        """/_ping's Swarm header (API 1.42+), when the swarm says it."""
        sw = self.swarm
        if sw is None or not sw.ping_header:
            return ()
        return (("Swarm", f"active/{sw.role}" if sw.role else "inactive"),)

    @staticmethod
    def _public(d):
        return {k: v for k, v in d.items() if not k.startswith("_")}

    def _list_body(self, items, bulk):
        body = json.dumps([self._public(x) for x in items]).encode()
        if bulk:
            body = b"[" + bulk + (b"," + body[1:] if len(body) > 2 else b"]")
        return body

    def _swarm_answer(self, h, key, m):
        with self.lock:
            sw = self.swarm
            nets, nodes = dict(sw.nets), dict(sw.nodes)
            svcs, tasks = dict(sw.services), list(sw.tasks.values())
            role = sw.role
        if key == "info":
            state = "active" if role else "inactive"
            return self._reply(h, 200, {"ID": "FAKE:ENGINE", "Name": "fake",
                                        "Swarm": {"NodeID": FakeSwarm.SELF if role else "",
                                                  "LocalNodeState": state,
                                                  "ControlAvailable": role == "manager"}})
        if key in ("services", "nodes", "tasks") and role != "manager":
            return self._reply(h, 503, {"message": "This node is not a swarm manager."})
        if key == "overlays":
            return self._reply(h, 200, list(nets.values()) if role else [])
        if key == "services":
            return self._reply(h, 200, self._list_body(svcs.values(), sw.bulk_services))
        if key == "nodes":
            return self._reply(h, 200, [{"ID": n, "Status": {"State": s}}
                                        for n, s in nodes.items()])
        if key == "tasks":
            return self._reply(h, 200, self._list_body(tasks, sw.bulk_tasks))
        local = [t for t in tasks if t["_gwbridge"]]
        if key == "gwbridge":
            return self._reply(h, 200, {
                "Name": "docker_gwbridge", "Id": _sid("net", "docker_gwbridge"),
                "Driver": "bridge", "Containers": {
                    t["Status"]["ContainerStatus"]["ContainerID"]:
                        {"Name": "gateway_x", "IPv4Address": t["_gwbridge"] + "/8",
                         "IPv6Address": ""} for t in local}})
        if key == "local":
            out = []
            for t in local:
                s = svcs[t["_service"]]
                labels = {"com.docker.swarm.task.id": t["ID"],
                          "com.docker.swarm.task.name": f"{t['_service']}.{t['Slot']}."
                                                        f"{t['ID']}",
                          "com.docker.swarm.service.name": t["_service"],
                          "com.docker.swarm.service.id": s["ID"],
                          "com.docker.swarm.node.id": FakeSwarm.SELF}
                labels.update(s["Spec"]["Labels"])
                out.append({"Id": t["Status"]["ContainerStatus"]["ContainerID"],
                            "Names": [f"/{labels['com.docker.swarm.task.name']}"],
                            "Labels": labels, "State": "running"})
            return self._reply(h, 200, out)
        # key == "view": a network's verbose view (by id or name)
        want = urllib.parse.unquote(m.group(1))
        net = next((n for n in nets.values() if want in (n["Id"], n["Name"])), None)
        if net is None:
            return self._reply(h, 404, {"message": f"network {want} not found"})
        view = dict(net, Containers={}, Services={})
        for name, s in svcs.items():
            mine = [t for t in tasks if t["ServiceID"] == s["ID"] and
                    t["NetworksAttachments"][0]["Network"]["ID"] == net["Id"] and
                    t["Status"]["State"] == "running" and
                    nodes.get(t["NodeID"]) == "ready"]    # gossip forgets the rest
            vip = next((v["Addr"].split("/")[0] for v in s["Endpoint"]["VirtualIPs"]
                        if v["NetworkID"] == net["Id"]), "")
            if mine or vip:
                view["Services"][name] = {
                    "VIP": vip, "Ports": [], "LocalLBIndex": 257,
                    "Tasks": [{"Name": f"{name}.{t['Slot']}.{t['ID']}",
                               "EndpointID": _hexid(t["ID"]),
                               "EndpointIP": t["NetworksAttachments"][0]["Addresses"][0]
                               .split("/")[0], "Info": {"Host IP": "192.0.2.1"}}
                              for t in mine]}
        return self._reply(h, 200, view)
