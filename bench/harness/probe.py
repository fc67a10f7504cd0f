"""One-shot correctness probes through a forwarder before it is measured."""
import socket
import struct

from backends import DNS_NAME, DNS_ANSWER


def http(port, expect_body):
    """GET /small.html; returns None when the body matches, else a reason."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.sendall(b"GET /small.html HTTP/1.0\r\nHost: bench\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as e:
        return "HTTP probe on port %d: %s" % (port, e)
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200") or body != expect_body:
        return "HTTP probe on port %d: unexpected answer %r" % (port, data[:80])
    return None


def dns(port):
    """A query for bench.test over UDP; None when answered correctly."""
    qid = 0x4242
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in DNS_NAME.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        for _attempt in range(3):
            s.sendto(q, ("127.0.0.1", port))
            try:
                data = s.recv(4096)
                break
            except socket.timeout:
                continue
        else:
            return "DNS probe on port %d: no answer" % port
    finally:
        s.close()
    rid, flags, _qd, an = struct.unpack(">HHHH", data[:8])
    if rid != qid or flags & 0x000F or an < 1 or \
            socket.inet_aton(DNS_ANSWER) not in data:
        return "DNS probe on port %d: bad answer %r" % (port, data[:64])
    return None
