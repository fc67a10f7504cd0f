#!/usr/bin/env python3
"""PROXY protocol towards the target (`--proxy-protocol v1|v2`), loopback only.

nginx's stream module is the receiver: a private nginx (own config, prefix,
pid and logs in a temp dir under ${BERTH_TEST_ROOT:-/tmp}, master process
off, stopped by pid) listens with `proxy_protocol` and answers each
connection with the addresses it read from the header. Clients bind to
127.0.0.2 (berth listens on 127.0.0.3) so source and destination are not
the loopback defaults berth itself would use: v1 and v2 from an IPv4
client, v1 and v2 from an IPv6 client on a [::1] listener to the IPv4
nginx, and a mapping without the option, which sends no header (nginx's
plain listener sees berth; its PROXY-protocol listener refuses the bare
bytes).

Raw bytes, without nginx: a Python server reads everything berth sends and
compares it with the header built here (struct and inet_pton, apart from
berth's encoder) followed by the client's bytes unchanged: a client that
sends at once after connecting (berth reads it eagerly right after the
target's connect), 1 MiB that crosses to the splice path, and a server that
speaks first while the client waits for it (SMTP-like).

The nginx cases skip, saying why, when nginx or its stream module is
missing; the raw cases need only berth.
"""

import contextlib
import hashlib
import os
import shutil
import socket
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402

NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
CLIENT_V4 = "127.0.0.2"
BERTH_V4 = "127.0.0.3"

V2_SIG = b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"


def expected_v2(src, dst):
    """src, dst: (ip, port) of one family. The spec's section 2.2."""
    fam = socket.AF_INET6 if ":" in src[0] else socket.AF_INET
    addrs = socket.inet_pton(fam, src[0]) + socket.inet_pton(fam, dst[0])
    body = addrs + struct.pack("!HH", src[1], dst[1])
    famproto = 0x21 if fam == socket.AF_INET6 else 0x11
    return V2_SIG + bytes([0x21, famproto]) + struct.pack("!H", len(body)) + body


def expected_v1(src, dst):
    """The spec's section 2.1, for addresses already canonical ("::1")."""
    fam = "TCP6" if ":" in src[0] else "TCP4"
    return f"PROXY {fam} {src[0]} {dst[0]} {src[1]} {dst[1]}\r\n".encode()


def client(host, port, src_host):
    """A connection to host:port from src_host on a port the kernel picks."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    c = socket.socket(fam, socket.SOCK_STREAM)
    c.settimeout(u.IO_TIMEOUT)
    c.bind((src_host, 0))
    c.connect((host, port))
    return c


class Nginx:
    """A private nginx whose stream servers are given as config lines."""

    def __init__(self, root, servers, ports):
        self.dir = tempfile.mkdtemp(prefix="nginx-", dir=root)
        self.err = os.path.join(self.dir, "error.log")
        self.pidfile = os.path.join(self.dir, "nginx.pid")
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("\n".join([
                f"load_module {NGINX_STREAM_MODULE};",
                "daemon off;", "master_process off;", "worker_processes 1;",
                f"pid {self.pidfile};", f"error_log {self.err} info;",
                "events { worker_connections 64; }",
                "stream {"] + servers + ["}"]) + "\n")
        self.proc = u.Proc(["nginx", "-e", self.err, "-p", self.dir, "-c", conf])
        for port in ports:
            ok = u.poll_until(lambda: not self.proc.alive() or
                              u.port_in_use("tcp", port), u.READY_TIMEOUT)
            if not self.proc.alive() or not ok:
                raise AssertionError(f"nginx did not listen on {port}:\n{self.log()}")

    def log(self):
        with contextlib.suppress(OSError), open(self.err) as f:
            return f.read()[-3000:]
        return ""

    def close(self):
        # Stopped by its pid (its own process group, as every Proc).
        self.proc.stop()
        self.proc.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_root():
    root = os.environ.get("BERTH_TEST_ROOT", "/tmp")
    os.makedirs(root, exist_ok=True)
    return tempfile.mkdtemp(prefix="berth-proxyproto-", dir=root)


class NginxReceiver(unittest.TestCase):
    """nginx reads the header and says what it read."""

    @classmethod
    def setUpClass(cls):
        u.require_berth()
        if not shutil.which("nginx"):
            raise unittest.SkipTest("nginx not installed (Debian: nginx-full)")
        if not os.path.exists(NGINX_STREAM_MODULE):
            raise unittest.SkipTest(f"nginx stream module missing ({NGINX_STREAM_MODULE}; "
                                    "Debian: libnginx-mod-stream)")
        cls.ipv6 = u.have_ipv6()
        cls.root = test_root()
        cls.stack = contextlib.ExitStack()
        try:
            cls._start()
        except BaseException:
            cls.stack.close()
            raise

    @classmethod
    def _start(cls):
        cls.pp_port = u.free_port()
        cls.plain_port = u.free_port()
        # $proxy_protocol_server_* (nginx 1.17.6+): the header's destination.
        says = ('"$proxy_protocol_addr $proxy_protocol_port '
                '$proxy_protocol_server_addr $proxy_protocol_server_port '
                '$remote_addr\\n"')
        nginx = Nginx(cls.root, [
            f"  server {{ listen 127.0.0.1:{cls.pp_port} proxy_protocol; "
            f"proxy_protocol_timeout 5s; return {says}; }}",
            f"  server {{ listen 127.0.0.1:{cls.plain_port}; "
            f'return "plain $remote_addr\\n"; }}'], [cls.pp_port, cls.plain_port])
        cls.stack.callback(nginx.close)
        cls.nginx = nginx
        # One berth per setting: the flag covers its command line's -p.
        cls.ports = {}
        for name, flag, target in (("v1", ["--proxy-protocol", "v1"], cls.pp_port),
                                   ("v2", ["--proxy-protocol", "v2"], cls.pp_port),
                                   ("off", [], cls.plain_port),
                                   ("off-to-pp", [], cls.pp_port)):
            port = u.free_port(hosts=("0.0.0.0",))
            args = flag + ["-p", f"{BERTH_V4}:{port}:127.0.0.1:{target}"]
            if cls.ipv6:
                args += ["-p", f"[::1]:{port}:127.0.0.1:{target}"]
            b = u.Berth(args + ["--log-level", "debug"])
            cls.stack.callback(b.close)
            b.wait_bound([("tcp", port)])
            cls.ports[name] = port
            setattr(cls, "berth_" + name.replace("-", "_"), b)

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        shutil.rmtree(cls.root, ignore_errors=True)

    def ask(self, name, host, src_host):
        """Connects to berth's port `name` on host from src_host; returns
        (nginx's line, the client's own address). The client sends nothing:
        nginx would close with its bytes unread, which is a reset."""
        with client(host, self.ports[name], src_host) as c:
            me = c.getsockname()[:2]
            reply = u.recv_all(c, 4096).decode()
        return reply, me

    def check_header(self, name, host, src_host):
        reply, me = self.ask(name, host, src_host)
        want = f"{me[0]} {me[1]} {host} {self.ports[name]} 127.0.0.1\n"
        self.assertEqual(reply, want, f"{name} from {me}; nginx log:\n{self.nginx.log()}")

    def test_v1_ipv4(self):
        self.check_header("v1", BERTH_V4, CLIENT_V4)

    def test_v2_ipv4(self):
        self.check_header("v2", BERTH_V4, CLIENT_V4)

    def test_v1_ipv6_client_ipv4_target(self):
        if not self.ipv6:
            self.skipTest("no IPv6 on this host")
        self.check_header("v1", "::1", "::1")

    def test_v2_ipv6_client_ipv4_target(self):
        if not self.ipv6:
            self.skipTest("no IPv6 on this host")
        self.check_header("v2", "::1", "::1")

    def test_without_option_no_header(self):
        reply, _ = self.ask("off", BERTH_V4, CLIENT_V4)
        self.assertEqual(reply, "plain 127.0.0.1\n")
        # The client's bytes to the PROXY-protocol listener: not a header,
        # and nginx says so.
        before = self.nginx.log().count("broken header")
        with client(BERTH_V4, self.ports["off-to-pp"], CLIENT_V4) as c:
            c.sendall(b"GET / HTTP/1.0\r\n\r\n")
            self.assertTrue(
                u.poll_until(lambda: self.nginx.log().count("broken header") > before, 10),
                self.nginx.log())
        self.assertIn('broken header: "GET / HTTP/1.0', self.nginx.log())


class RawBytes(unittest.TestCase):
    """Everything berth sends to the target, byte for byte."""

    @classmethod
    def setUpClass(cls):
        u.require_berth()
        cls.ipv6 = u.have_ipv6()
        cls.stack = contextlib.ExitStack()
        try:
            cls._start()
        except BaseException:
            cls.stack.close()
            raise

    @classmethod
    def _start(cls):
        def reader(c, srv):
            # Reads to the end, answers with what it read's sha256.
            got = u.recv_all(c)
            c.sendall(hashlib.sha256(got).digest())
            return got

        def greeter(c, srv):
            # Speaks first, as SMTP or SSH servers do, then reads.
            c.sendall(b"hello\n")
            return reader(c, srv)

        cls.servers = {"read": u.ThreadServer(reader), "greet": u.ThreadServer(greeter)}
        for srv in cls.servers.values():
            cls.stack.callback(srv.close)
        cls.ports = {}
        for name, server in (("v1", "read"), ("v2", "read"), ("off", "read"),
                             ("v2", "greet")):
            port = u.free_port()
            target = cls.servers[server].port
            args = [] if name == "off" else ["--proxy-protocol", name]
            args += ["-p", f"{BERTH_V4}:{port}:127.0.0.1:{target}"]
            if cls.ipv6:
                args += ["-p", f"[::1]:{port}:127.0.0.1:{target}"]
            b = u.Berth(args)
            cls.stack.callback(b.close)
            b.wait_bound([("tcp", port)])
            cls.ports[(name, server)] = port

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def check(self, name, host, src_host, data, server="read"):
        """Sends data at once after connecting (after the greeting, with
        server "greet"), then FIN; the target must have read the header
        (built here) followed by exactly data."""
        port = self.ports[(name, server)]
        srv = self.servers[server]
        n_before = len(srv.results)
        with client(host, port, src_host) as c:
            me = c.getsockname()[:2]
            if server == "greet":
                # The client waits for the server, so berth's read of the
                # client right after the connect finds nothing.
                self.assertEqual(u.recv_exact(c, 6), b"hello\n")
            c.sendall(data)
            c.shutdown(socket.SHUT_WR)
            digest = u.recv_all(c, 64)
        self.assertTrue(u.poll_until(lambda: len(srv.results) > n_before, 10))
        got = srv.results[-1]
        self.assertEqual(digest, hashlib.sha256(got).digest())
        src, dst = (me[0], me[1]), (host, port)
        hdr = {"v1": expected_v1, "v2": expected_v2}.get(name, lambda s, d: b"")(src, dst)
        self.assertEqual(got[:len(hdr)], hdr, f"header: {got[:120]!r}")
        self.assertEqual(len(got), len(hdr) + len(data))
        self.assertTrue(got[len(hdr):] == data, "client bytes changed after the header")

    def test_v2_ipv4_at_once(self):
        self.check("v2", BERTH_V4, CLIENT_V4, b"GET / HTTP/1.0\r\n\r\n")

    def test_v1_ipv4_at_once(self):
        self.check("v1", BERTH_V4, CLIENT_V4, b"GET / HTTP/1.0\r\n\r\n")

    def test_v2_ipv6(self):
        if not self.ipv6:
            self.skipTest("no IPv6 on this host")
        self.check("v2", "::1", "::1", b"\x00\x01binary\r\n")

    def test_v1_ipv6(self):
        if not self.ipv6:
            self.skipTest("no IPv6 on this host")
        self.check("v1", "::1", "::1", b"\x00\x01binary\r\n")

    def test_v2_bulk(self):
        """1 MiB: reads of 16 KiB and more go through splice."""
        self.check("v2", BERTH_V4, CLIENT_V4, os.urandom(1 << 20))

    def test_v2_server_speaks_first(self):
        self.check("v2", BERTH_V4, CLIENT_V4, b"after the greeting", server="greet")

    def test_off_sends_nothing_extra(self):
        self.check("off", BERTH_V4, CLIENT_V4, b"PROXY is not sent\r\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
