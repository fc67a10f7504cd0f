#!/usr/bin/python3
"""berth following a Docker engine over ssh:// (issue 15, item 2), as the
docker CLI does: `ssh -l USER -p PORT -o ConnectTimeout=30 -T -- HOST
docker system dial-stdio`, HTTP over its stdio, one ssh per connection.

The test starts a private dockerd (dockerd.PrivateDockerd) and a private
sshd on 127.0.0.1 (a free port, its own config, host key and authorized
keys the test generates; no PAM; `SetEnv DOCKER_HOST=` points the remote
`docker system dial-stdio` at the private daemon). ssh finds its config,
key and known_hosts under the user's home from the password database, not
$HOME: berth runs in a private mount namespace (unshare -m) where a
directory of the test's own is bind-mounted over root's home, so nothing
of the machine's own ssh setup is read or changed.

Checks: a container reached by name through --docker ssh://root@...;
berth reconnects after sshd and every ssh session are killed and sshd
comes back (a container started after that is reached too); its ssh
children are reaped (no zombies) and gone once berth stops; `ssh` missing
from PATH and a refused login are each told in one clear message.

Traffic stays on loopback. Stops only what it started, by pid. Exit 77
(skipped) when not root or dockerd, sshd, ssh or unshare are missing.
"""

import atexit
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dockerd as dk  # noqa: E402
import e2e_util as u  # noqa: E402

SETTLE_S = 30.0   # berth's retries back off: give a reconnect time
SSHD = "/usr/sbin/sshd"

D = None
S = None


def setUpModule():
    global D, S
    u.require_berth()
    dk.require()
    for tool in (SSHD, shutil.which("ssh"), shutil.which("ssh-keygen"),
                 shutil.which("unshare")):
        if not tool or not os.access(tool, os.X_OK):
            raise unittest.SkipTest("needs sshd, ssh, ssh-keygen and unshare "
                                    "(apt-get install openssh-server openssh-client)")
    signal.signal(signal.SIGTERM, _interrupt)
    D = dk.PrivateDockerd()
    atexit.register(D.close)
    D.__enter__()
    S = PrivateSshd(D.url)
    atexit.register(S.close)
    S.start()


def tearDownModule():
    if S is not None:
        S.close()
    if D is not None:
        D.close()


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def note(msg):
    sys.stderr.write(f"    [{time.strftime('%T')}] {msg}\n")
    sys.stderr.flush()


def children(pid):
    """{child pid: state letter} of pid's children, from /proc."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out[int(p)] = fields[0]
    return out


def descendants(pid):
    found, pending = [], [pid]
    while pending:
        for c in children(pending.pop()):
            found.append(c)
            pending.append(c)
    return found


def ssh_processes(port):
    """Pids of ssh clients for our port (berth's children or orphans)."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"ssh" and str(port).encode() in argv:
            pids.append(int(p))
    return pids


class PrivateSshd:
    """sshd on 127.0.0.1:port with a config, keys and a home of its own."""

    def __init__(self, docker_url):
        self.docker_url = docker_url
        self.proc = None
        self.made_run_dir = False
        self.dir = tempfile.mkdtemp(prefix="berth-sshd.",
                                    dir=os.environ.get("BERTH_TEST_ROOT") or "/tmp")
        os.chmod(self.dir, 0o755)
        self.home = os.path.join(self.dir, "home")
        dot = os.path.join(self.home, ".ssh")
        os.makedirs(dot, mode=0o700)
        self.port = u.free_port(hosts=("127.0.0.1",))
        hostkey = os.path.join(self.dir, "host_key")
        userkey = os.path.join(dot, "id_ed25519")
        for key in (hostkey, userkey):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                            "berth-test", "-f", key], check=True,
                           stdin=subprocess.DEVNULL, capture_output=True)
        self.authorized = os.path.join(self.dir, "authorized_keys")
        shutil.copy(userkey + ".pub", self.authorized)
        with open(hostkey + ".pub") as f:
            kind, blob = f.read().split()[:2]
        with open(os.path.join(dot, "known_hosts"), "w") as f:
            f.write(f"[127.0.0.1]:{self.port} {kind} {blob}\n")
        with open(os.path.join(dot, "config"), "w") as f:
            f.write("Host 127.0.0.1\n"
                    f"  IdentityFile {userkey}\n"
                    "  IdentitiesOnly yes\n"
                    f"  UserKnownHostsFile {dot}/known_hosts\n"
                    "  StrictHostKeyChecking yes\n"
                    "  BatchMode yes\n")
        os.chmod(os.path.join(dot, "config"), 0o600)
        self.config = os.path.join(self.dir, "sshd_config")
        with open(self.config, "w") as f:
            f.write(f"Port {self.port}\n"
                    "ListenAddress 127.0.0.1\n"
                    f"HostKey {hostkey}\n"
                    f"PidFile {self.dir}/sshd.pid\n"
                    f"AuthorizedKeysFile {self.authorized}\n"
                    "PermitRootLogin prohibit-password\n"
                    "StrictModes no\n"
                    "UsePAM no\n"
                    "PasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\n"
                    "X11Forwarding no\n"
                    "AllowTcpForwarding no\n"
                    "PrintMotd no\n"
                    # The remote `docker system dial-stdio` reaches the
                    # private daemon, never the machine's own.
                    f"SetEnv DOCKER_HOST={docker_url}\n"
                    "LogLevel VERBOSE\n")
        self.log = os.path.join(self.dir, "sshd.log")

    def start(self):
        # sshd insists on its privilege separation directory.
        if not os.path.isdir("/run/sshd"):
            os.makedirs("/run/sshd", mode=0o755)
            self.made_run_dir = True
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", self.config],
                                     stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=logf, start_new_session=True)
        logf.close()
        u.poll_until(lambda: self.proc.poll() is not None or
                     u.port_in_use("tcp", self.port), 10, what="sshd listening")
        if self.proc.poll() is not None:
            raise RuntimeError(f"sshd exited {self.proc.returncode}: {self.log_tail()}")

    def stop(self):
        """sshd and every session it started (each session is a process
        of its own session, so a process group kill would miss them)."""
        if self.proc is None:
            return
        pids = descendants(self.proc.pid) + [self.proc.pid]
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        self.proc = None
        # The sessions were sshd's children: reaped by it or by init.
        u.poll_until(lambda: not u.port_in_use("tcp", self.port), 10)

    def log_tail(self, n=20):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no sshd log)"

    def close(self):
        self.stop()
        if self.made_run_dir:
            try:
                os.rmdir("/run/sshd")
            except OSError:
                pass
            self.made_run_dir = False
        shutil.rmtree(self.dir, ignore_errors=True)


class SshCase(unittest.TestCase):
    def setUp(self):
        self.names = []
        self.berth = None

    def tearDown(self):
        D.rm(*self.names)

    def url(self, user="root"):
        return f"ssh://{user}@127.0.0.1:{S.port}"

    def start_berth(self, url, *args, tcp=(), path=None, home=True):
        """berth with DOCKER_HOST=URL (config.c's --docker check does not
        take ssh:// yet; the endpoint resolution does); with home, in a
        private mount namespace where the test's home is root's home (ssh
        reads ~/.ssh from there); path replaces PATH."""
        env = dict(os.environ, DOCKER_HOST=url)
        for k in ("DOCKER_TLS_VERIFY", "DOCKER_TLS", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
            env.pop(k, None)
        if path is not None:
            env["PATH"] = path
        argv = [u.BERTH, "--log-level", "debug"] + list(args)
        if home:
            pw_dir = pwd.getpwuid(os.getuid()).pw_dir
            argv = ["unshare", "--mount", "--propagation", "private", "/bin/sh",
                    "-c", f'mount --bind "{S.home}" "{pw_dir}" && exec "$0" "$@"'] + argv
        b = u.Proc(argv, env=env)
        self.berth = b
        self.addCleanup(b.close)
        u.poll_until(lambda: not b.alive() or all(
            u.listening_inodes("tcp", p) & u.socket_inodes(b.pid) for p in tcp),
            u.READY_TIMEOUT, 0.02, what="berth bound")
        self.check(b.alive(), "berth exited early")
        return b

    def run_ct(self, name, *cmd):
        self.names.append(name)
        return D.run(name, *cmd)[:12]

    def check(self, cond, msg):
        if not cond:
            tail = self.berth.log_tail(40) if self.berth else "(no berth)"
            self.fail(f"{msg}\n{tail}\n--- sshd:\n{S.log_tail()}")

    def served(self, port, want, timeout=SETTLE_S):
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = _get(port)
            if got == want:
                return time.monotonic()
            time.sleep(0.1)
        self.check(False, f"127.0.0.1:{port}: want {want!r}, last answer {got!r}")

    def expect_log(self, text, timeout=SETTLE_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.berth.stderr():
                return
            time.sleep(0.1)
        self.check(False, f"berth never logged {text!r}")

    def no_zombies(self):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            zombies = [p for p, st in children(self.berth.pid).items() if st == "Z"]
            if not zombies:
                return
            time.sleep(0.1)
        self.check(False, f"berth left zombie children {zombies}")

    # -------------------------------------------------------------- tests

    def test_by_name_and_reconnect_after_sshd_restart(self):
        p1 = u.free_ports(2, hosts=("127.0.0.1",))
        p2 = p1 + 1
        web = self.run_ct("sshweb", "hostweb")
        b = self.start_berth(self.url(), "-p", f"127.0.0.1:{p1}:sshweb:80",
                             "-p", f"127.0.0.1:{p2}:sshweb2:80", tcp=(p1, p2))
        self.served(p1, web)
        note(f"reached sshweb ({web}) over {self.url()}")
        sshs = [p for p in children(b.pid)]
        self.check(sshs, "no ssh child of berth while synced")
        self.check(all(p in ssh_processes(S.port) for p in sshs),
                   f"berth's children are not our ssh clients: {sshs}")
        self.check("following ssh://" in b.stderr(), "no start-up line naming ssh://")

        S.stop()   # the event stream's ssh session dies with it
        self.expect_log("Connection refused")
        note("sshd down: berth tells ssh's own error")
        S.start()
        web2 = self.run_ct("sshweb2", "hostweb")
        t0 = time.monotonic()
        self.served(p2, web2)
        note(f"sshd back: a new container reached {time.monotonic() - t0:.1f} s after")
        self.served(p1, web)
        self.no_zombies()

        rc = b.stop()
        self.check(rc == 0, f"berth exited with {rc} on SIGTERM")
        left = u.poll_until(lambda: not ssh_processes(S.port), 5) or ssh_processes(S.port)
        self.check(left is True, f"ssh clients left after berth stopped: {left}")

    def test_ssh_missing_is_told(self):
        empty = tempfile.mkdtemp(dir=S.dir)
        p = u.free_port(hosts=("127.0.0.1",))
        self.start_berth(self.url(), "-p", f"127.0.0.1:{p}:sshweb:80", tcp=(p,),
                         path=empty, home=False)
        want = f"{self.url()}: the ssh command is not installed"
        self.expect_log(want, timeout=10)
        note(f"told: {want}")

    def test_refused_login_is_told(self):
        p = u.free_port(hosts=("127.0.0.1",))
        self.start_berth(self.url("berth-no-such-user"), "-p",
                         f"127.0.0.1:{p}:sshweb:80", tcp=(p,))
        self.expect_log("Permission denied (publickey)", timeout=15)
        line = [ln for ln in self.berth.stderr().splitlines()
                if "Permission denied" in ln][0]
        self.check(self.url("berth-no-such-user") in line, f"URL not named: {line}")
        note(f"told: {line}")
        self.no_zombies()


def _get(port, timeout=3.0):
    """GET / on 127.0.0.1:port: the body stripped, or None."""
    import http.client
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", "/")
        r = c.getresponse()
        body = r.read().decode("utf-8", "replace").strip()
        c.close()
        return body if r.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None


def _skip_reason():
    try:
        u.require_berth()
        dk.require()
    except unittest.SkipTest as e:
        return str(e)
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ssh", "ssh-keygen", "unshare"):
        if not shutil.which(tool):
            return f"{tool} not installed (apt-get install openssh-client util-linux)"
    if not os.access(SSHD, os.X_OK):
        return "sshd not installed (apt-get install openssh-server)"
    return None


if __name__ == "__main__":
    why = _skip_reason()
    if why:
        print(f"SKIP: {why}")
        sys.exit(77)
    try:
        u.main()
    except KeyboardInterrupt:
        sys.exit(1)
