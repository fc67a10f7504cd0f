"""One-shot correctness probes through a forwarder before it is measured."""
import os
import socket
import sys

from backends import DNS_NAME, DNS_ANSWER

# the DNS codec the tests use (tests/e2e/dnsmsg.py), after the harness's own
# modules
E2E = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tests", "e2e")
if E2E not in sys.path:
    sys.path.append(E2E)
import dnsmsg  # noqa: E402


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
    for _attempt in range(3):
        rcode, addrs = dnsmsg.ask_addrs("127.0.0.1", port, DNS_NAME,
                                        timeout=2)
        if rcode is not None:
            break
    else:
        return "DNS probe on port %d: no answer" % port
    if rcode != dnsmsg.NOERROR or DNS_ANSWER not in addrs:
        return "DNS probe on port %d: bad answer: rcode %d, addresses %s" % (
            port, rcode, addrs)
    return None
