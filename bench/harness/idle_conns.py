#!/usr/bin/python3
"""Hold N idle TCP connections through a forwarder (loopback only).

usage: idle_conns.py BACKEND_PORT FRONT_PORT N

Listens on 127.0.0.1:BACKEND_PORT (the forwarder's target), prints
"LISTENING", then waits for a line "go" on stdin. It then opens N
connections to 127.0.0.1:FRONT_PORT in batches, accepting on the backend
side, until N connections arrived at the backend (so the forwarder holds
2N sockets). It prints "READY n_front n_back", then waits for "check":
it sends one byte on 20 client connections and prints "CHECK k" with the
number of bytes that reached the backend, then waits for stdin to close.
Bounded: gives up after 120 s.
"""
import resource
import selectors
import socket
import sys
import time


def main():
    back_port, front_port, n = map(int, sys.argv[1:4])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", back_port))
    lst.listen(4096)
    lst.setblocking(False)
    print("LISTENING", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    sel = selectors.DefaultSelector()
    sel.register(lst, selectors.EVENT_READ)
    front, back = [], []
    deadline = time.time() + 120
    batch = 256

    def accept_some(wait):
        for _key, _ev in sel.select(timeout=wait):
            while True:
                try:
                    c, _ = lst.accept()
                except BlockingIOError:
                    break
                back.append(c)

    while len(front) < n and time.time() < deadline:
        for _ in range(min(batch, n - len(front))):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", front_port))
            except BlockingIOError:
                pass
            front.append(s)
        # let the forwarder catch up before the next batch
        target, had = len(front), len(back)
        limit = time.time() + 10
        while len(back) < target and time.time() < limit:
            accept_some(0.2)
        if len(back) == had:
            break           # no progress in 10 s: the forwarder stopped
    while len(back) < n and time.time() < deadline:
        accept_some(0.2)
    broken = 0
    for s in front:
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            broken += 1
    print("READY %d %d %d" % (len(front) - broken, len(back), broken),
          flush=True)
    if sys.stdin.readline().strip() != "check":
        return
    for s in back:
        sel.register(s, selectors.EVENT_READ)
    step = max(1, len(front) // 20)
    for s in front[::step][:20]:
        try:
            s.send(b"x")
        except OSError:
            pass
    got, limit = 0, time.time() + 5
    while got < 20 and time.time() < limit:
        for key, _ev in sel.select(timeout=0.2):
            if key.fileobj is lst:
                continue
            try:
                got += len(key.fileobj.recv(16))
            except OSError:
                pass
    print("CHECK %d" % got, flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
