#!/usr/bin/python3
"""Exact-count client for the 'syscalls' metric (harness/syscalls.py).

    opclient.py KIND PORT N BODY_FILE [CONC]

KIND: conn (N HTTP/1.0 GETs, a new connection each, one after another),
conn50 (the same with CONC connections in flight), keepalive (N HTTP/1.1
GETs on one connection, each answered before the next), udp (N DNS queries
on one socket, each answered before the next), udp50 (N DNS queries from
CONC sockets, one in flight on each: CONC flows through the forwarder).
Every answer is checked.

Protocol on stdin/stdout, so the harness can open its measurement window
around exactly the N operations: warm-up (a few operations; the keep-alive
connection and the UDP socket are opened here), print READY, wait for a
line on stdin, do the N operations, print one JSON line, wait for stdin to
close, then close the keep-alive connection / socket and exit. All traffic
goes to 127.0.0.1; every loop is bounded by N and by time-outs.
"""
import json
import os
import selectors
import socket
import sys
import time

E2E = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tests", "e2e")
sys.path.append(E2E)
import dnsmsg  # noqa: E402

HOST = "127.0.0.1"
TIMEOUT = 5.0            # per operation
DEADLINE = 300.0         # for all N operations
WARMUP = 10
GET10 = b"GET /small.html HTTP/1.0\r\nHost: bench\r\n\r\n"
GET11 = b"GET /small.html HTTP/1.1\r\nHost: bench\r\n\r\n"
DNS_NAME = "bench.test"


def good_http(data, body):
    head, _, got = data.partition(b"\r\n\r\n")
    return head.startswith(b"HTTP/1.1 200") and got == body


def one_conn(port, body):
    with socket.create_connection((HOST, port), timeout=TIMEOUT) as s:
        s.sendall(GET10)
        data = b""
        for _ in range(1000):               # bounded: 128-byte answers
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return good_http(data, body)


class KeepAlive:
    def __init__(self, port):
        self.s = socket.create_connection((HOST, port), timeout=TIMEOUT)
        self.buf = b""

    def _fill(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise OSError("connection closed by the forwarder")
        self.buf += chunk

    def request(self, body):
        self.s.sendall(GET11)
        for _ in range(1000):
            if b"\r\n\r\n" in self.buf:
                break
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        length = None
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        if length is None:
            raise OSError("no Content-Length in %r" % head[:80])
        for _ in range(1000):
            if len(self.buf) >= length:
                break
            self._fill()
        got, self.buf = self.buf[:length], self.buf[length:]
        return head.startswith(b"HTTP/1.1 200") and got == body

    def close(self):
        self.s.close()


class Udp:
    def __init__(self, port):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.settimeout(TIMEOUT)
        self.s.connect((HOST, port))
        self.qid = 0

    def request(self, _body):
        self.qid = (self.qid + 1) & 0xFFFF
        self.s.send(dnsmsg.query(DNS_NAME, qid=self.qid))
        for _ in range(100):                # skip late answers to old ids
            msg = dnsmsg.header(self.s.recv(65535))
            if msg["id"] == self.qid:
                return msg["rcode"] == 0 and msg["an"] >= 1
        return False

    def close(self):
        self.s.close()


def concurrent(port, n, conc, body, deadline):
    """n HTTP/1.0 connections, conc in flight; returns (ok, failed)."""
    sel = selectors.DefaultSelector()
    started = ok = failed = 0

    def start():
        nonlocal started
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((HOST, port))
        sel.register(s, selectors.EVENT_WRITE, [b"", time.time()])
        started += 1

    while started < min(conc, n):
        start()
    while ok + failed < n and time.time() < deadline:
        for key, ev in sel.select(timeout=1.0):
            s, st = key.fileobj, key.data
            done = None
            try:
                if ev & selectors.EVENT_WRITE:
                    s.send(GET10)             # 44 bytes: one send suffices
                    sel.modify(s, selectors.EVENT_READ, st)
                    continue
                chunk = s.recv(65536)
                if chunk:
                    st[0] += chunk
                    continue
                done = good_http(st[0], body)
            except OSError:
                done = False
            sel.unregister(s)
            s.close()
            ok, failed = (ok + 1, failed) if done else (ok, failed + 1)
            if started < n:
                start()
        for key in list(sel.get_map().values()):      # per-connection timeout
            if time.time() - key.data[1] > TIMEOUT:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                failed += 1
                if started < n:
                    start()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    return ok, failed


def udp_concurrent(flows, n, deadline):
    """n DNS queries on the sockets of flows (Udp, warmed up), one in flight
    on each; returns (ok, failed)."""
    sel = selectors.DefaultSelector()
    sent = ok = failed = 0

    def ask(s, st):
        nonlocal sent
        st[0] = (st[0] + 1) & 0xFFFF
        st[1] = time.time()
        s.send(dnsmsg.query(DNS_NAME, qid=st[0]))
        sent += 1

    for f in flows[:n]:
        f.s.setblocking(False)
        st = [f.qid, 0.0, True]      # id in flight, when asked, still asking
        sel.register(f.s, selectors.EVENT_READ, st)
        ask(f.s, st)
    try:
        while ok + failed < n and time.time() < deadline:
            for key, _ev in sel.select(timeout=1.0):
                s, st = key.fileobj, key.data
                try:
                    msg = dnsmsg.header(s.recv(65535))
                except OSError:
                    continue
                if msg["id"] != st[0] or not st[2]:
                    continue                     # a late answer to an old id
                good = msg["rcode"] == 0 and msg["an"] >= 1
                ok, failed = (ok + 1, failed) if good else (ok, failed + 1)
                st[2] = sent < n
                if st[2]:
                    ask(s, st)
            for key in sel.get_map().values():   # per-query timeout
                s, st = key.fileobj, key.data
                if st[2] and time.time() - st[1] > TIMEOUT:
                    failed += 1
                    st[2] = sent < n
                    if st[2]:
                        ask(s, st)
    finally:
        sel.close()
    return ok, failed


def main(argv):
    kind, port, n, body_file = argv[0], int(argv[1]), int(argv[2]), argv[3]
    conc = int(argv[4]) if len(argv) > 4 else 50
    with open(body_file, "rb") as fh:
        body = fh.read()
    session = None
    flows = []
    if kind == "keepalive":
        session = KeepAlive(port)
    elif kind == "udp":
        session = Udp(port)
    elif kind == "udp50":
        # The flows exist before the window, as the keep-alive connection
        # does: what is counted is a query on a flow the forwarder holds.
        flows = [Udp(port) for _ in range(conc)]
        if not all(f.request(body) for f in flows):
            print(json.dumps({"error": "warm-up answer was wrong"}), flush=True)
            return 1
        session = flows[0]
    elif kind not in ("conn", "conn50"):
        raise SystemExit("unknown kind %r" % kind)
    for _ in range(WARMUP):
        good = session.request(body) if session else one_conn(port, body)
        if not good:
            print(json.dumps({"error": "warm-up answer was wrong"}), flush=True)
            return 1
    print("READY", flush=True)
    if not sys.stdin.readline():
        return 1
    t0 = time.time()
    deadline = t0 + DEADLINE
    ok = failed = 0
    err = None
    if kind == "conn50":
        ok, failed = concurrent(port, n, conc, body, deadline)
    elif kind == "udp50":
        ok, failed = udp_concurrent(flows, n, deadline)
    else:
        for _ in range(n):
            if time.time() > deadline:
                break
            try:
                good = session.request(body) if session else one_conn(port, body)
            except OSError as e:
                good, err = False, str(e)
                if kind == "keepalive":       # the connection is gone
                    break
            ok, failed = (ok + 1, failed) if good else (ok, failed + 1)
    res = {"kind": kind, "n": n, "ok": ok, "failed": failed,
           "elapsed_s": round(time.time() - t0, 4)}
    if ok + failed < n:
        res["error"] = "only %d of %d operations done%s" % (
            ok + failed, n, ": " + err if err else "")
    elif failed:
        res["error"] = "%d of %d answers wrong or missing%s" % (
            failed, n, " (last: %s)" % err if err else "")
    print(json.dumps(res), flush=True)
    sys.stdin.read()          # the harness closes the window, then stdin
    for f in flows or ([session] if session else []):
        f.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
