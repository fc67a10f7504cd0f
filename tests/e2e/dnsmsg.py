"""dnsmsg: DNS messages as the tests and the bench write and read them.

One small codec (RFC 1035, the EDNS0 OPT record of RFC 6891) for
test_dns.py, test_dns_docker.py and bench/harness (dnsserve.py, probe.py,
which put this folder on sys.path). It is written apart from berth's own C
codec on purpose: a reply berth gets wrong must not be read back by the
same mistake. Names are sent exactly as given, so mixed case (0x20) can be
checked in the echoed question. Python standard library only.
"""

import random
import socket
import struct

# record types
T_A, T_NS, T_SOA, T_PTR, T_AAAA, T_OPT = 1, 2, 6, 12, 28, 41
T_MX, T_TXT, T_ANY = 15, 16, 255
CLASS_IN, CLASS_CH, CLASS_ANY = 1, 3, 255

# response codes
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5

# header flag bits, and the DO bit of the OPT record's flags
QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
EDNS_DO = 0x8000


# ---------------------------------------------------------------- writing

def qname_wire(name):
    """A name in wire form, labels as given (case kept, trailing dot
    optional), uncompressed."""
    out = b""
    for label in name.split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def opt_record(size, version=0, do=False):
    """The EDNS0 pseudo-record: root owner, type OPT, the UDP size in the
    class field, extended rcode 0, version, DO flag, no options."""
    return b"\0" + struct.pack(">HHBBHH", T_OPT, size, 0, version, EDNS_DO if do else 0, 0)


def query(name, qtype=T_A, qid=0x1234, flags=RD, edns=None, do=False, version=0,
          qclass=CLASS_IN):
    """One question (class IN unless qclass says otherwise); with edns (the
    advertised UDP size) an OPT record in the additional section."""
    msg = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 1 if edns is not None else 0)
    msg += qname_wire(name) + struct.pack(">HH", qtype, qclass)
    if edns is not None:
        msg += opt_record(edns, version, do)
    return msg


# ---------------------------------------------------------------- reading

def header(msg):
    """The 12-byte header as a dict: id, flags, rcode, tc and the four
    section counts qd, an, ns, ar."""
    qid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", msg[:12])
    return {"id": qid, "flags": flags, "rcode": flags & 0xF, "tc": bool(flags & TC),
            "qd": qd, "an": an, "ns": ns, "ar": ar}


def read_name(msg, off):
    """(dotted name with its final dot, offset after it), following
    compression pointers; a pointer loop raises ValueError."""
    labels, end, hops = [], None, 0
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            hops += 1
            if hops > 64:
                raise ValueError("compression loop")
            continue
        off += 1
        if n == 0:
            break
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n
    return ".".join(labels) + ".", (end if end is not None else off)


def _rdata(msg, off, rtype, rdlen):
    """A and AAAA as address strings, NS and PTR as names, SOA as (mname,
    rname, serial, refresh, retry, expire, minimum); other types as bytes."""
    rd = msg[off:off + rdlen]
    if rtype == T_A:
        return socket.inet_ntop(socket.AF_INET, rd)
    if rtype == T_AAAA:
        return socket.inet_ntop(socket.AF_INET6, rd)
    if rtype in (T_PTR, T_NS):
        return read_name(msg, off)[0]
    if rtype == T_SOA:
        mname, o = read_name(msg, off)
        rname, o = read_name(msg, o)
        return (mname, rname) + struct.unpack(">IIIII", msg[o:o + 20])
    return rd


def parse(msg):
    """header() plus "question", a list of (name, type, class), and
    "answer", "authority", "additional", lists of dicts {name, type, class,
    ttl, data}. A message cut short, with bytes after its last record or
    with a record it cannot read raises ValueError."""
    try:
        h = header(msg)
        off = 12
        h["question"] = []
        for _ in range(h["qd"]):
            name, off = read_name(msg, off)
            qt, qc = struct.unpack(">HH", msg[off:off + 4])
            off += 4
            h["question"].append((name, qt, qc))
        for sect, count in (("answer", h["an"]), ("authority", h["ns"]),
                            ("additional", h["ar"])):
            rrs = []
            for _ in range(count):
                name, off = read_name(msg, off)
                rt, rc, ttl, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
                off += 10
                if off + rdlen > len(msg):
                    raise ValueError("record data past the end")
                rrs.append({"name": name, "type": rt, "class": rc, "ttl": ttl,
                            "data": _rdata(msg, off, rt, rdlen)})
                off += rdlen
            h[sect] = rrs
    except (IndexError, struct.error) as e:
        raise ValueError(f"message cut short: {e}") from None
    if off != len(msg):
        raise ValueError(f"{len(msg) - off} bytes after the last record")
    return h


# ---------------------------------------------------------------- transport

def udp_ask(port, msg, host="127.0.0.1", timeout=10.0):
    """Sends msg over UDP and returns the first datagram back (OSError,
    socket.timeout included, when none comes)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(msg, (host, port))
        return s.recv(65535)


def tcp_frame(msg):
    """msg with the two-byte length prefix of DNS over TCP."""
    return struct.pack(">H", len(msg)) + msg


def tcp_read(sock):
    """One length-prefixed message from a DNS TCP stream; EOFError when the
    stream ends part way."""
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError(f"stream ended after {len(buf)} of {n} bytes")
            buf += chunk
        return buf
    return exact(struct.unpack(">H", exact(2))[0])


def ask_addrs(host, port, name, qtype=T_A, timeout=2.0):
    """One UDP query with a random ID: (rcode, sorted addresses of qtype in
    the answer), or (None, []) when no reply with that ID comes in time or
    the reply cannot be read."""
    qid = random.randrange(1, 0xFFFF)
    try:
        m = parse(udp_ask(port, query(name, qtype, qid=qid), host, timeout))
    except (OSError, ValueError):
        return None, []
    if m["id"] != qid:
        return None, []
    return m["rcode"], sorted(r["data"] for r in m["answer"] if r["type"] == qtype)
