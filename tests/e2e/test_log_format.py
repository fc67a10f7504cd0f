#!/usr/bin/python3
"""--log-format json: every stderr line is one JSON object with time, level
and message, plus mapping and client on lines about a connection; the
rate-limited summaries too. Text stays as it was. A bad format is exit 2
with one line; docker-proxy mode takes BERTH_LOG_FORMAT."""

import json
import os
import re
import signal
import socket
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as u  # noqa: E402

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"error", "warn", "info", "debug"}


def setUpModule():
    u.require_berth()


def refused(port, times):
    """times connections to 127.0.0.1:port, each reset by berth."""
    for _ in range(times):
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=u.IO_TIMEOUT)
        except ConnectionResetError:
            # berth accepted, failed to reach the target and reset the
            # client before this connect() returned: on a loaded machine the
            # reset can land first, and connect() then reports it.
            continue
        try:
            c.settimeout(u.IO_TIMEOUT)
            try:
                data = c.recv(16)
            except ConnectionResetError:
                data = b""
            assert data == b"", f"bytes from a refused target: {data!r}"
        finally:
            c.close()


class JsonLines(unittest.TestCase):
    def parse(self, err):
        """Every line of err as a JSON object with the fields every line has."""
        lines = err.splitlines()
        self.assertTrue(lines, "no log at all")
        objs = []
        for line in lines:
            try:
                o = json.loads(line)
            except ValueError as e:
                self.fail(f"not JSON ({e}): {line!r}\nall:\n{err}")
            self.assertIsInstance(o, dict, line)
            self.assertRegex(o.get("time", ""), TIME, line)
            self.assertIn(o.get("level"), LEVELS, line)
            self.assertIsInstance(o.get("message"), str, line)
            self.assertLessEqual(set(o), {"time", "level", "mapping", "client", "message"},
                                 line)
            objs.append(o)
        return objs

    def test_refused_target(self):
        """Three refused connections: the first said with mapping and
        client, the other two counted, the summary said at exit with the
        mapping, all of it JSON."""
        P = u.free_port()
        T = u.free_port()   # nothing listens there: refused
        with u.Berth(["--log-format", "json", "--publish", f"127.0.0.1:{P}:127.0.0.1:{T}"]) as b:
            b.wait_bound([("tcp", P)])
            refused(P, 3)
            self.assertEqual(b.stop(), 0, b.stderr())
            objs = self.parse(b.stderr())
        mapping = f"127.0.0.1:{P}->127.0.0.1:{T}/tcp"
        conn = [o for o in objs if "client" in o]
        self.assertEqual(len(conn), 1, objs)  # rate-limited: said once
        self.assertEqual(conn[0]["mapping"], mapping)
        self.assertRegex(conn[0]["client"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual(conn[0]["level"], "warn")
        self.assertEqual(conn[0]["message"], f"connect 127.0.0.1:{T}: Connection refused")
        summary = [o for o in objs if "times in the last" in o["message"]]
        self.assertEqual(len(summary), 1, objs)
        self.assertEqual(summary[0].get("mapping"), mapping)
        self.assertNotIn("client", summary[0])
        self.assertRegex(summary[0]["message"],
                         rf"^connect 127\.0\.0\.1:{T}: Connection refused "
                         r"\(3 times in the last \d+ s\)$")
        self.assertTrue(any(o["message"].startswith("listening: ") for o in objs), objs)

    def test_debug_lines_of_a_session(self):
        """relay_log's lines (debug: connected, closed) carry the fields too."""
        with u.EchoServer() as echo:
            P = u.free_port()
            with u.Berth(["--log-format", "json", "--log-level", "debug", "--publish",
                          f"127.0.0.1:{P}:127.0.0.1:{echo.port}"]) as b:
                b.wait_bound([("tcp", P)])
                self.assertEqual(u.tcp_roundtrip(("127.0.0.1", P), b"hi"), b"hi")
                u.poll_until(lambda: "closed" in b.stderr(), u.IO_TIMEOUT, what="closed")
                self.assertEqual(b.stop(), 0, b.stderr())
                objs = self.parse(b.stderr())
        mapping = f"127.0.0.1:{P}->127.0.0.1:{echo.port}/tcp"
        closed = [o for o in objs if o["message"] == "closed"]
        self.assertEqual(len(closed), 1, objs)
        self.assertEqual(closed[0]["mapping"], mapping)
        self.assertEqual(closed[0]["level"], "debug")
        self.assertRegex(closed[0]["client"], r"^127\.0\.0\.1:\d+$")

    def test_config_file_key(self):
        P = u.free_port()
        T = u.free_port()
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="berth-log-") as f:
            json.dump({"log-format": "json",
                       "publish": [f"127.0.0.1:{P}:127.0.0.1:{T}"]}, f)
            f.flush()
            with u.Berth(["--config", f.name]) as b:
                b.wait_bound([("tcp", P)])
                self.assertEqual(b.stop(), 0, b.stderr())
                self.parse(b.stderr())


class TextUnchanged(unittest.TestCase):
    def test_text_connection_line(self):
        P = u.free_port()
        T = u.free_port()
        with u.Berth(["--publish", f"127.0.0.1:{P}:127.0.0.1:{T}"]) as b:
            b.wait_bound([("tcp", P)])
            refused(P, 2)
            self.assertEqual(b.stop(), 0, b.stderr())
            err = b.stderr()
        m = re.escape(f"127.0.0.1:{P}->127.0.0.1:{T}/tcp")
        stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z berth"
        self.assertRegex(err, re.compile(
            rf"^{stamp} warn: {m} client 127\.0\.0\.1:\d+: connect 127\.0\.0\.1:{T}: "
            r"Connection refused$", re.M))
        self.assertRegex(err, re.compile(
            rf"^{stamp} warn: {m}: connect 127\.0\.0\.1:{T}: Connection refused "
            r"\(2 times in the last \d+ s\)$", re.M))
        self.assertNotIn("{", err)


class BadFormat(unittest.TestCase):
    def test_unknown_format_is_usage(self):
        rc, out, err, _ = u.run_berth(["--log-format", "yaml", "--publish", "127.0.0.1:1:1.2.3.4:1"])
        self.assertEqual(rc, 2, err)
        self.assertEqual(err, "berth: --log-format 'yaml': want text or json\n")
        self.assertEqual(out, "")


class DockerProxyMode(unittest.TestCase):
    def compat(self, env, P, T):
        return u.Proc([u.BERTH, "-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", P,
                       "-container-ip", "127.0.0.1", "-container-port", T],
                      env={**os.environ, **env})

    def test_env_json(self):
        P = u.free_port()
        T = u.free_port()
        with self.compat({"BERTH_LOG_FORMAT": "json"}, P, T) as p:
            u.poll_until(lambda: not p.alive() or u.port_in_use("tcp", P),
                         u.READY_TIMEOUT, what="bound")
            self.assertTrue(p.alive(), p.stderr())
            refused(P, 1)
            u.poll_until(lambda: "refused" in p.stderr(), u.IO_TIMEOUT, what="the line")
            self.assertEqual(p.stop(signal.SIGTERM), 0, p.stderr())
            lines = p.stderr().splitlines()
        objs = [json.loads(l) for l in lines]
        conn = [o for o in objs if "client" in o]
        self.assertEqual(len(conn), 1, lines)
        self.assertEqual(conn[0]["mapping"], f"127.0.0.1:{P}->127.0.0.1:{T}/tcp")
        self.assertIn("Connection refused", conn[0]["message"])

    def test_env_bad(self):
        P = u.free_port()
        with self.compat({"BERTH_LOG_FORMAT": "yaml"}, P, 9) as p:
            self.assertEqual(p.wait(10), 2, p.stderr())
            self.assertIn("BERTH_LOG_FORMAT: --log-format 'yaml': want text or json",
                          p.stderr())
            self.assertEqual(len(p.stderr().splitlines()), 1, p.stderr())


if __name__ == "__main__":
    unittest.main(verbosity=2)
