#!/usr/bin/python3
"""Transparent mode's host setup: scripts/berth-tproxy (up, status, down:
idempotent and reversible) and berth's start-up check, which must accept any
setup that works the way the kernel's Documentation/networking/tproxy.rst
describes (nft or iptables, legacy or nft backend, any mark and table) and
name the missing piece otherwise.

Each case runs in a network namespace of its own that the test makes (`ip
netns add`, lo up, no default route) and deletes at the end: berth-tproxy,
nft, iptables, ip and berth (with --transparent and --publish on the
namespace's loopback) all run inside it through `ip netns exec`. No packet is
forwarded: berth is started, its start-up lines read, and stopped by pid.

Cases: berth-tproxy up/status/up again (one rule each)/berth happy/down/down
again; up with IPv6 disabled by sysctl (IPv6 skipped with a note); IPv4-only
rules with a [::] listener to an IPv4 target (IPv4 works, IPv6 named);
`ct state established,related accept` before the marking rule; nothing set up (and, once berth-tproxy up runs, berth's 30 s re-check
says it works now); ip rule and route but no marking rule; marking rule but
no ip rule; the kernel doc's nft rules (mark 1, table 100: TCP works, UDP is
named missing); the kernel doc's iptables-legacy rules (-m socket -j DIVERT,
DIVERT: MARK --set-mark 1, ACCEPT; table 100); iptables-nft with
--transparent, mark 0x5, table 77; berth as nobody (no CAP_NET_ADMIN); no
nft or iptables-save visible to berth (a mount namespace hiding /usr/sbin):
a warning, transparent mode kept.

Needs root, ip, nft, iptables-legacy and iptables-nft: exits 77 (ctest:
skipped) naming what is missing."""

import os
import shutil
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import netns_util as nu  # noqa: E402

SCRIPT = os.path.join(HERE, "..", "..", "scripts", "berth-tproxy")
BERTH = os.environ.get("BERTH", "berth")
PREF = "7425"
TOOLS = ("ip", "nft", "iptables-legacy", "iptables-nft", "ip6tables-legacy")


def tool(name):
    # The system's own tools first, in the directories berth's check looks
    # in, rather than nu.tool()'s PATH first: the rules the cases set and
    # read are made by the nft and iptables berth runs; None when missing.
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        if os.access(f"{d}/{name}", os.X_OK):
            return f"{d}/{name}"
    return shutil.which(name)


def skip_reason():
    if os.geteuid() != 0:
        return "needs root (ip netns add)"
    for t in TOOLS:
        if not tool(t):
            return f"needs {t}"
    if not os.access(BERTH, os.X_OK):
        return f"needs berth ($BERTH={BERTH})"
    return None


KERNEL_DOC_NFT = """
table ip filter {
    chain divert {
        type filter hook prerouting priority -150; policy accept;
        meta l4proto tcp socket transparent 1 meta mark set 1 accept
    }
}
"""


class TproxySetup(unittest.TestCase):
    def setUp(self):
        self.net = nu.Netns(f"berth-tproxy-{os.getpid()}-{self._testMethodName[5:20]}")
        self.addCleanup(self.net.close)

    def sh(self, name, *args, check=True, **kw):
        return self.net.run([tool(name)] + list(args), check=check, timeout=60, **kw)

    def tproxy(self, *args, check=True):
        return self.net.run(["/bin/bash", SCRIPT] + list(args), check=check, timeout=60)

    def berth(self, *publish, prefix=(), wait_for="listening:", keep=False):
        """Starts berth with --transparent and these --publish specs, reads
        its lines until wait_for; returns them (and the process if keep)."""
        argv = list(prefix) + [BERTH, "--transparent"]
        for p in publish:
            argv += ["-p", p]
        p = self.net.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
            if wait_for in line:
                break
        text = "".join(lines)
        if keep:
            return text, p
        p.terminate()
        p.wait(timeout=10)
        p.stdout.close()
        return text

    def rules(self, fam):
        out = self.sh("ip", fam, "rule", "list", "pref", PREF).stdout
        return [l for l in out.splitlines() if l.strip()]

    def assert_works(self, text, mark):
        self.assertNotIn("cannot work", text)
        self.assertIn(f"transparent mode: replies to transparent sockets are marked {mark}", text)

    def test_berth_tproxy_up_status_down(self):
        r = self.tproxy("status", check=False)
        self.assertEqual(r.returncode, 3, r.stdout)
        self.assertIn("nft table inet berth_tproxy: absent", r.stdout)
        self.tproxy("up")
        r = self.tproxy("status")
        for want in ("nft table inet berth_tproxy: present",
                     "socket transparent 1 meta mark set meta mark | 0x02000000 accept",
                     "ip -4 rule pref 7425 fwmark 0x2000000/0x2000000 lookup 7425: present",
                     "ip -4 route local 0.0.0.0/0 dev lo table 7425: present",
                     "ip -6 rule pref 7425 fwmark 0x2000000/0x2000000 lookup 7425: present",
                     "ip -6 route local ::/0 dev lo table 7425: present"):
            self.assertIn(want, r.stdout)
        self.tproxy("up")
        self.assertEqual(len(self.rules("-4")), 1)
        self.assertEqual(len(self.rules("-6")), 1)
        ruleset = self.sh("nft", "list", "ruleset").stdout
        self.assertEqual(ruleset.count("socket transparent 1"), 1, ruleset)
        self.assertEqual(self.tproxy("status").returncode, 0)
        text = self.berth("127.0.0.1:8080:127.0.0.1:9000", "[::1]:8081:[::1]:9000/udp")
        self.assert_works(text, "0x2000000")
        # Someone else's rule and route in the same table stay.
        self.sh("ip", "route", "add", "198.51.100.0/24", "dev", "lo", "table", "7425")
        self.tproxy("down")
        self.assertEqual(self.rules("-4"), [])
        self.assertEqual(self.rules("-6"), [])
        self.assertNotIn("berth_tproxy", self.sh("nft", "list", "tables").stdout)
        left = self.sh("ip", "route", "show", "table", "7425").stdout
        self.assertNotIn("local", left)
        self.assertIn("198.51.100.0/24", left)
        self.assertEqual(self.sh("ip", "-6", "route", "show", "table", "7425").stdout.strip(), "")
        self.tproxy("down")
        text = self.berth("127.0.0.1:8080:127.0.0.1:9000")
        self.assertIn("transparent mode cannot work: no rule marks TCP packets (IPv4)", text)

    def test_nothing_then_recheck(self):
        text, p = self.berth("127.0.0.1:8080:127.0.0.1:9000", keep=True)
        self.assertIn("transparent mode cannot work: no rule marks TCP packets (IPv4) of "
                      "transparent sockets", text)
        self.assertIn("run `berth-tproxy up`", text)
        self.assertIn("transparent mappings of TCP/IPv4 connect normally", text)
        self.tproxy("up")
        deadline = time.monotonic() + 45
        line = ""
        while time.monotonic() < deadline and "works now" not in line:
            line = p.stdout.readline()
            if not line:
                break
        self.assertIn("transparent mode works now: replies to transparent sockets are "
                      "marked 0x2000000", line)
        p.terminate()
        p.wait(timeout=10)

    def test_sigchld_ignored(self):
        # A parent that ignores SIGCHLD (SIG_IGN is kept through exec): the
        # check's children must still be waited for.
        self.tproxy("up")
        ign = ("import os, signal, sys; signal.signal(signal.SIGCHLD, signal.SIG_IGN); "
               "os.execv(sys.argv[1], sys.argv[1:])")
        text = self.berth("127.0.0.1:8080:127.0.0.1:9000",
                          prefix=[sys.executable, "-c", ign])
        self.assert_works(text, "0x2000000")

    def test_ipv6_disabled(self):
        # IPv6 in the kernel (/proc/net/if_inet6) but disabled by sysctl:
        # up sets IPv4 up and says IPv6 was skipped, status is happy.
        self.sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        r = self.tproxy("up")
        self.assertIn("IPv6 is disabled (net.ipv6.conf.lo.disable_ipv6 = 1): IPv6 skipped",
                      r.stderr)
        self.assertEqual(len(self.rules("-4")), 1)
        self.assertEqual(self.tproxy("status").returncode, 0)
        self.tproxy("down")
        self.assertEqual(self.rules("-4"), [])

    def test_one_family_missing(self):
        # IPv4-only rules (the kernel doc's) and a mapping listening on [::]
        # to an IPv4 target: the target's family decides, IPv4 works.
        self.sh("nft", "-f", "-", input=KERNEL_DOC_NFT)
        self.sh("ip", "rule", "add", "fwmark", "1", "lookup", "100")
        self.sh("ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100")
        text = self.berth("[::]:8080:127.0.0.1:9000", "0.0.0.0:8080:127.0.0.1:9000",
                          "[::1]:8081:[::1]:9000")
        self.assertIn("transparent mode: replies to transparent sockets are marked 0x1 and "
                      "delivered locally, for TCP/IPv4", text)
        self.assertIn("transparent mode cannot work: no rule marks TCP packets (IPv6) of "
                      "transparent sockets", text)
        self.assertIn("transparent mappings of TCP/IPv6 connect normally", text)

    def test_replies_accepted_before_marked(self):
        # An earlier `ct state established,related accept` in the marking
        # chain: replies never reach the marking rule.
        self.sh("nft", "-f", "-", input="""
table inet fw {
    chain pre {
        type filter hook prerouting priority -150; policy accept;
        ct state established,related accept
        socket transparent 1 meta mark set 0x10
    }
}
""")
        self.sh("ip", "rule", "add", "fwmark", "0x10", "lookup", "100")
        self.sh("ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100")
        text = self.berth("127.0.0.1:8080:127.0.0.1:9000")
        self.assertIn("cannot work: TCP packets (IPv4) are not marked: rule 'ct state "
                      "established,related accept' in chain inet fw pre accepts replies "
                      "before they are marked", text)

    def test_route_but_no_marking_rule(self):
        self.tproxy("up")
        self.sh("nft", "delete", "table", "inet", "berth_tproxy")
        text = self.berth("127.0.0.1:8080:127.0.0.1:9000/udp")
        self.assertIn("cannot work: no rule marks UDP packets (IPv4) of transparent sockets",
                      text)

    def test_marking_rule_but_no_route(self):
        self.tproxy("up")
        self.sh("ip", "-4", "rule", "del", "pref", PREF)
        text = self.berth("127.0.0.1:8080:127.0.0.1:9000")
        self.assertIn("cannot work: IPv4 packets marked 0x2000000 are not delivered locally: "
                      "no `ip rule fwmark 0x2000000 lookup T` with `local 0.0.0.0/0 dev lo` in "
                      "table T", text)
        # IPv6 still has its rule: an IPv6 mapping works.
        self.assert_works(self.berth("[::1]:8080:[::1]:9000"), "0x2000000")
        self.tproxy("up")
        self.sh("ip", "-6", "route", "del", "local", "::/0", "dev", "lo", "table", PREF)
        text = self.berth("[::1]:8080:[::1]:9000")
        self.assertIn("cannot work: IPv6 packets marked 0x2000000 are not delivered locally: "
                      "no `ip -6 rule fwmark 0x2000000 lookup T` with `local ::/0 dev lo`", text)

    def test_kernel_doc_nft(self):
        self.sh("nft", "-f", "-", input=KERNEL_DOC_NFT)
        self.sh("ip", "rule", "add", "fwmark", "1", "lookup", "100")
        self.sh("ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100")
        self.assert_works(self.berth("127.0.0.1:8080:127.0.0.1:9000"), "0x1")
        # The doc's rule is for TCP only: a UDP mapping's replies stay unmarked.
        text = self.berth("127.0.0.1:8080:127.0.0.1:9000/udp")
        self.assertIn("cannot work: no rule marks UDP packets (IPv4)", text)

    def test_kernel_doc_iptables_legacy(self):
        ipt = "iptables-legacy"
        self.sh(ipt, "-t", "mangle", "-N", "DIVERT")
        self.sh(ipt, "-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "-m", "socket",
                "-j", "DIVERT")
        self.sh(ipt, "-t", "mangle", "-A", "DIVERT", "-j", "MARK", "--set-mark", "1")
        self.sh(ipt, "-t", "mangle", "-A", "DIVERT", "-j", "ACCEPT")
        text = self.berth("127.0.0.1:8080:127.0.0.1:9000")
        self.assertIn("cannot work: IPv4 packets marked 0x1 are not delivered locally", text)
        self.sh("ip", "rule", "add", "fwmark", "1", "lookup", "100")
        self.sh("ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100")
        self.assert_works(self.berth("127.0.0.1:8080:127.0.0.1:9000"), "0x1")

    def test_iptables_nft_transparent(self):
        self.sh("iptables-nft", "-t", "mangle", "-A", "PREROUTING", "-m", "socket",
                "--transparent", "-j", "MARK", "--set-mark", "0x5")
        self.sh("ip", "rule", "add", "fwmark", "0x5", "lookup", "77")
        self.sh("ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "77")
        self.assert_works(self.berth("127.0.0.1:8080:127.0.0.1:9000",
                                     "127.0.0.1:8081:127.0.0.1:9000/udp"), "0x5")
        text = self.berth("[::1]:8080:[::1]:9000")
        self.assertIn("cannot work: no rule marks TCP packets (IPv6)", text)

    def test_as_nobody(self):
        self.tproxy("up")
        text = self.berth("127.0.0.1:8080:127.0.0.1:9000",
                          prefix=[tool("setpriv"), "--reuid=65534", "--regid=65534",
                                  "--clear-groups"])
        self.assertIn("transparent mode cannot work: no CAP_NET_ADMIN: IP_TRANSPARENT refused "
                      "(run berth as root or with CAP_NET_ADMIN)", text)

    def test_script_without_nft(self):
        # nft lives in /usr/sbin only: hidden by an empty tmpfs in a mount
        # namespace of the script's own.
        r = self.net.run([tool("unshare"), "--mount", "--propagation", "private", "/bin/sh",
                          "-c", 'mount -t tmpfs tmpfs /usr/sbin && exec /bin/bash "$0" up',
                          SCRIPT], check=False, timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stderr, "berth-tproxy: 'nft' not found (install nftables)\n")
        self.assertEqual(self.sh("nft", "list", "ruleset").stdout, "")
        r = self.tproxy("up", "--mark", "0x1ffffffff", check=False)
        self.assertEqual((r.returncode, r.stderr),
                         (2, "berth-tproxy: --mark '0x1ffffffff' is not a number\n"))

    def test_no_tools_visible(self):
        self.tproxy("up")
        # berth in a mount namespace of its own where /usr/sbin (and so
        # /sbin) is an empty tmpfs, as in a container without nft.
        hide = [tool("unshare"), "--mount", "--propagation", "private", "/bin/sh", "-c",
                'mount -t tmpfs tmpfs /usr/sbin && [ ! -e /sbin/nft ] && exec "$0" "$@"']
        text = self.berth("127.0.0.1:8080:127.0.0.1:9000", prefix=hide)
        self.assertIn("transparent mode: cannot see the packet-marking rules (nft not found "
                      "in /usr/sbin or /sbin): assuming the host is set up", text)
        self.assertNotIn("cannot work", text)
        self.assertIn("listening:", text)


if __name__ == "__main__":
    why = skip_reason()
    if why:
        print(f"skipped: {why}")
        sys.exit(77)
    unittest.main(verbosity=2)
