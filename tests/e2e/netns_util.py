"""Network namespaces of a test's own, for the end-to-end tests that need
root (Python 3.11 stdlib only): traffic stays inside them, and close()
stops what was started in them, by pid, and deletes them."""
import os
import shutil
import signal
import subprocess
import sys
import unittest

import e2e_util as u


def tool(name):
    """An administration tool (ip, nft, dnsmasq...): from PATH, else
    /usr/sbin (not on a plain user's PATH)."""
    return shutil.which(name) or f"/usr/sbin/{name}"


def ip(*args, check=True):
    """`ip ARGS...`; its stdout. Raises AssertionError naming the command
    and ip's message when it fails (unless check=False)."""
    r = subprocess.run([tool("ip")] + list(args), capture_output=True, text=True,
                       timeout=20)
    if check and r.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


class Netns:
    """A network namespace of the test's own (`ip netns add NAME`, lo up,
    nothing else: no link, no route), commands run in it through `ip netns
    exec`. close() stops the processes spawn() started (by pid: SIGTERM,
    SIGKILL after 10 s) and deletes the namespace, its links, routes and
    rules with it. Needs root."""

    def __init__(self, name):
        self.name = name
        self.procs = []
        ip("netns", "add", name)
        try:
            self.ip("link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def argv(self, argv):
        """argv run inside the namespace."""
        return [tool("ip"), "netns", "exec", self.name] + list(argv)

    def ip(self, *args, check=True):
        """`ip -n NAME ARGS...`; its stdout (see ip())."""
        return ip("-n", self.name, *args, check=check)

    def run(self, argv, check=True, timeout=30, **kw):
        """argv in the namespace, to its end; the CompletedProcess (text).
        Raises AssertionError with the command, exit code and output when it
        fails (unless check=False)."""
        r = subprocess.run(self.argv(argv), capture_output=True, text=True,
                           timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"in {self.name}: {' '.join(map(str, argv))}: exit "
                                 f"{r.returncode}: {r.stdout}{r.stderr}".strip())
        return r

    def spawn(self, argv, **kw):
        """argv started in the namespace, in a session of its own (Popen
        arguments in kw); stopped by close()."""
        p = subprocess.Popen(self.argv(argv), start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def close(self):
        for p in reversed(self.procs):  # ours, by pid
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
            if p.stdout and not p.stdout.closed:
                p.stdout.close()
        self.procs = []
        ip("netns", "del", self.name, check=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main_needing_root(name, tools):
    """A test file's __main__: exits 77 (ctest: skipped) saying why, as
    `NAME: skipped: needs ...` on stderr, without root or one of tools;
    then needs berth (e2e_util.require_berth) and runs the tests."""
    why = None
    if os.geteuid() != 0:
        why = "needs root (ip netns add)"
    else:
        why = next((f"needs {t}" for t in tools if not os.path.exists(tool(t))), None)
    if why:
        print(f"{name}: skipped: {why}", file=sys.stderr)
        sys.exit(77)
    u.require_berth()
    unittest.main(verbosity=2)
