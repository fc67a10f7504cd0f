#!/bin/bash
# berth as dockerd's userland proxy, for real.
#
#   dockerd_dropin.sh [--modern] [--iptables]
#
# Starts a private dockerd (own data/exec roots, socket, containerd
# namespace and bridge) with --userland-proxy-path=berth, imports a busybox
# image carrying a static udp_echo, and checks:
#   1. TCP:  docker run -p 127.0.0.1:P:80 httpd, curl through it; the proxy
#      holds the connection to the container (ss); a 32 MiB file with its
#      sha256 compared to the container's
#   2. UDP:  docker run -p 127.0.0.1:U:7/udp -p 127.0.0.1:U:7 udp_echo -t, a
#      datagram round trip, and 32 MiB echoed over TCP both ways at once,
#      sha256 compared
#   3. the proxies are berth processes, children of dockerd, run with
#      docker-proxy's flags; dockerd 28+ passed -use-listen-fd to every one,
#      older dockerd (Debian 12's 20.10, which binds ports itself) to none
#   4. -p P:80 (all addresses): dockerd runs one proxy on 0.0.0.0 and, with
#      IPv6, one on :: (IPv4 container address); both answer; a container on
#      the bridge reaches it at the gateway address through the proxy
#      (hairpin, seen with ss); -p [::1]:L:80 to an IPv4-only container
#      answers through a proxy from ::1 to the IPv4 address
#   5. a host port already in use: docker run fails with the proxy's error
#      (dockerd 28+: dockerd's own, it binds)
#   6. docker stop, then docker rm -f: the berth processes go away
#
# Without options the daemon is the system's dockerd with --iptables=false,
# so every published-port packet goes through the proxy. --modern runs
# today's dockerd instead: the newest docker.io of Debian's development suite
# (scripts/modern-docker; the test skips when it cannot be fetched).
# --iptables turns dockerd's iptables on, as on a default install, inside a
# network and mount namespace the test makes (lo up, no default route, its
# own /run): loopback and hairpin traffic then reach the proxy while other
# IPv4 traffic is DNATed. The DNAT rules are checked to be there; ss shows
# the proxy holding the loopback and hairpin connections, and not one to the
# gateway's address from the namespace (DNATed); an IPv6 client on a
# non-loopback address of an IPv4-only container goes through the proxy
# (no NAT rule can serve it).
# Always stops dockerd and removes everything it made (trap).
#
# Env: BERTH (default <repo>/build/berth), UDP_ECHO_STATIC (static
# udp_echo; without it the UDP part is skipped with a message),
# BERTH_TEST_ROOT (directory for the daemon's root, default /tmp), DOCKERD
# (the dockerd to run, default the one on PATH), BERTH_CACHE (where
# scripts/modern-docker caches).
# Exit 0 pass, 1 fail, 77 skip (not root / no dockerd / no static busybox /
# today's dockerd cannot be fetched).

set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/dockerd_lib.sh
. "$HERE/dockerd_lib.sh"
MODERN=0
IPTABLES=0
ARGS=("$@")
for a in "$@"; do
    case "$a" in
    --modern) MODERN=1 ;;
    --iptables) IPTABLES=1 ;;
    *) echo "usage: dockerd_dropin.sh [--modern] [--iptables]" >&2; exit 2 ;;
    esac
done

need_common
command -v ip >/dev/null && command -v ss >/dev/null || skip "iproute2 not installed"
[ $MODERN = 1 ] && fetch_modern_dockerd
need_dockerd
DOCKERD_VERSION=$("$DOCKERD" --version 2>/dev/null | sed -n 's/^Docker version \([^,]*\),.*/\1/p')
DOCKERD_MAJOR=${DOCKERD_VERSION%%.*}
case "$DOCKERD_MAJOR" in
''|*[!0-9]*) echo "FAIL: cannot tell the version of $DOCKERD: $("$DOCKERD" --version 2>&1)"; exit 1 ;;
esac
# dockerd 28.0 and later bind published ports themselves and hand them over
# as fd 4 with -use-listen-fd; before, the proxy bound them.
if [ "$DOCKERD_MAJOR" -ge 28 ]; then LISTEN_FD=1; else LISTEN_FD=0; fi

# With iptables on, dockerd writes NAT rules and sysctls of the network
# namespace it runs in: this script runs itself again inside network and
# mount namespaces of its own (dockerd_lib.sh's enter_test_namespaces).
if [ $IPTABLES = 1 ]; then
    command -v iptables >/dev/null || skip "iptables not installed"
    enter_test_namespaces "${ARGS[@]}"
    setup_test_namespaces
fi

HOG_PID=
HOLD_PID=
make_test_root berth-dockerd berthe2e
own_cleanup() {
    [ -n "$HOG_PID" ] && kill "$HOG_PID" 2>/dev/null
    [ -n "$HOLD_PID" ] && kill "$HOLD_PID" 2>/dev/null
}

free_port() {
    # A port free for TCP and UDP on all IPv4 and IPv6 addresses.
    "$PY" - <<'EOF'
import random, socket
def free(p):
    for fam, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        for typ in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            try:
                s = socket.socket(fam, typ)
            except OSError:
                continue
            try:
                s.bind((host, p))
            except OSError:
                return False
            finally:
                s.close()
    return True
for _ in range(1000):
    p = random.randrange(12000, 32000)
    if free(p):
        print(p)
        break
EOF
}

# The proxies (dockerd_lib.sh's proxies) of host port PORT; none.
proxies_for_port() { proxies | grep -- "-host-port $1 " || true; }
no_proxies_for_port() { [ -z "$(proxies_for_port "$1")" ]; }

# ---------------------------------------------------------------- daemon

# A bridge of our own, so another dockerd owning docker0 does not matter.
SUBNET=
for _ in $(seq 1 50); do
    n=$((RANDOM % 200 + 20))
    if ! ip -4 route | grep -q "^10\.231\.$n\." && ! ip -4 addr | grep -q " 10\.231\.$n\."; then
        SUBNET=10.231.$n
        break
    fi
done
[ -n "$SUBNET" ] || { echo "FAIL: no free 10.231.x.0/24 for the test bridge"; exit 1; }
GW=$SUBNET.1
add_bridge "$GW"

if [ $IPTABLES = 1 ]; then
    # As installed: NAT rules, forwarding and masquerading (dockerd's
    # defaults), in this test's namespace.
    DOCKERD_NETFLAGS=(--iptables=true)
    NETMODE="iptables on, in a namespace of its own"
else
    NETMODE="iptables off"
fi
say "starting dockerd $DOCKERD_VERSION ($DOCKERD) in $ROOT (bridge $BR $GW/24, $NETMODE, proxy $BERTH)"
start_dockerd "$BERTH"
say "dockerd $DOCKERD_VERSION up (pid $DOCKERD_PID)"

# ---------------------------------------------------------------- image

stage_image sh httpd nc sleep cat echo hostname dd sha256sum printf
mkdir -p "$IMG/www"
echo hello-from-berth >"$IMG/www/index.html"
[ $HAVE_UDP = 1 ] || echo "NOTE: no static udp_echo at $UDP_ECHO_STATIC: skipping the UDP and echo checks"
import_image

container_ip() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }

# proxy_holding PORT TARGET: a proxy of host port PORT has an established
# TCP connection to TARGET (ADDR:PORT), so the client's bytes go through it.
proxy_holding() {
    local pid out
    out=$(ss -Htnp state established dst "$2" 2>/dev/null)
    for pid in $(proxies_for_port "$1" | awk '{print $1}'); do
        case "$out" in *"pid=$pid,"*) return 0 ;; esac
    done
    return 1
}

# hold_open HOST PORT: a client connection kept open for 20 s, in the
# background (HOLD_PID); end_hold ends it.
hold_open() {
    "$PY" -c '
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)
time.sleep(20)' "$1" "$2" &
    HOLD_PID=$!
}
end_hold() {
    [ -n "$HOLD_PID" ] && kill "$HOLD_PID" 2>/dev/null && wait "$HOLD_PID" 2>/dev/null
    HOLD_PID=
}

# check_dnat PORT: with iptables on, dockerd's DNAT rule for the port is
# there (so what is neither loopback nor hairpin bypasses the proxy).
check_dnat() {
    [ $IPTABLES = 1 ] || return 0
    local rule
    rule=$(iptables -w -t nat -S 2>/dev/null | grep -e "--dport $1 " | grep DNAT | head -n 1)
    if [ -n "$rule" ]; then
        pass "iptables: DNAT for port $1 present: $rule"
    else
        fail "iptables: no DNAT rule for port $1: $(iptables -w -t nat -S 2>&1 | tr '\n' ';')"
    fi
}

# ---------------------------------------------------------------- 1. TCP

P=$(free_port)
CT=$(docker run -d -p "127.0.0.1:$P:80" "$IMAGE" httpd -f -p 80 -h /www 2>>"$ROOT/cli.log") ||
    { echo "FAIL: docker run -p 127.0.0.1:$P:80"; exit 1; }
CT_IP=$(container_ip "$CT")
get_page() { [ "$(curl -s --max-time 3 "http://127.0.0.1:$P/")" = hello-from-berth ]; }
if wait_until 20 get_page; then
    pass "TCP: curl 127.0.0.1:$P through the proxy got the page"
else
    fail "TCP: curl 127.0.0.1:$P did not get the page: $(curl -sS --max-time 3 "http://127.0.0.1:$P/" 2>&1)"
fi
# The connection is the proxy's: while a client holds 127.0.0.1:P open, a
# proxy of port P is connected to the container.
hold_open 127.0.0.1 "$P"
if wait_until 10 proxy_holding "$P" "$CT_IP:80"; then
    pass "TCP: a client of 127.0.0.1:$P is relayed by the proxy to $CT_IP:80 (ss)"
else
    fail "TCP: no proxy of port $P connected to $CT_IP:80 while a client held 127.0.0.1:$P: $(ss -Htnp state established 2>&1 | tr '\n' ';')"
fi
end_hold
check_dnat "$P"
# 32 MiB of random bytes, checksummed at both ends.
if docker exec "$CT" dd if=/dev/urandom of=/www/big.bin bs=1048576 count=32 2>/dev/null; then
    want=$(docker exec "$CT" sha256sum /www/big.bin | cut -d' ' -f1)
    got=$(curl -s --max-time 120 "http://127.0.0.1:$P/big.bin" | sha256sum | cut -d' ' -f1)
    if [ -n "$want" ] && [ "$want" = "$got" ]; then
        pass "TCP: 32 MiB file through the proxy, sha256 ${want:0:16}... as in the container"
    else
        fail "TCP: 32 MiB file: sha256 $got, the container has $want"
    fi
else
    fail "TCP: could not write the 32 MiB file in the container"
fi

# ---------------------------------------------------------------- 3. processes

# check_proxy_process PORT PROTO: a proxy child of dockerd for the port and
# protocol, running berth with docker-proxy's flags.
check_proxy_process() {
    local port=$1 proto=$2 line
    line=$(proxies_for_port "$port" | grep -- "-proto $proto " | head -n 1)
    if [ -z "$line" ]; then
        fail "no $proto proxy child of dockerd for port $port"
        return
    fi
    set -- $line
    if [ "$2" != "$BERTH" ]; then
        fail "proxy for port $port is $2, not $BERTH"
        return
    fi
    case "$line" in
    *"-proto $proto "*"-host-ip "*"-host-port $port "*"-container-ip "*"-container-port "*)
        pass "proxy for $proto port $port: pid $1 runs $BERTH, child of dockerd: ${line#* * }" ;;
    *) fail "unexpected proxy arguments: $line" ;;
    esac
}
check_proxy_process "$P" tcp

# ---------------------------------------------------------------- 2. UDP, echo

U=
if [ $HAVE_UDP = 1 ]; then
    U=$(free_port)
    if docker run -d -p "127.0.0.1:$U:7/udp" -p "127.0.0.1:$U:7" "$IMAGE" udp_echo -t 7 >/dev/null 2>>"$ROOT/cli.log"; then
        check_proxy_process "$U" udp
        check_proxy_process "$U" tcp
        if "$PY" - "$U" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
end = time.monotonic() + 20
msg = b"berth-udp-" + bytes(range(200))
while time.monotonic() < end:
    s.sendto(msg, ("127.0.0.1", port))
    try:
        data, src = s.recvfrom(2048)
    except (socket.timeout, ConnectionRefusedError):
        continue
    if data == msg and src == ("127.0.0.1", port):
        sys.exit(0)
    print("bad reply", data[:40], src)
    sys.exit(1)
print("no reply within 20 s")
sys.exit(1)
EOF
        then
            pass "UDP: datagram round trip through the proxy to udp_echo in a container"
        else
            fail "UDP: no round trip on 127.0.0.1:$U"
        fi
        if out=$("$PY" - "$U" 2>&1 <<'EOF'
# 32 MiB to the TCP echo and back at the same time, sha256 of both ends.
import hashlib, os, socket, sys, threading, time
port, n = int(sys.argv[1]), 32 << 20
data = os.urandom(n)
end = time.monotonic() + 20
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port), 5)
        break
    except OSError:
        if time.monotonic() > end:
            raise
        time.sleep(0.2)
s.settimeout(60)
def send():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send, daemon=True)
t.start()
h, got, end = hashlib.sha256(), 0, time.monotonic() + 120
while time.monotonic() < end:
    b = s.recv(1 << 20)
    if not b:
        break
    h.update(b)
    got += len(b)
want = hashlib.sha256(data).hexdigest()
print(f"{got} bytes back, sha256 {h.hexdigest()[:16]}..., sent {want[:16]}...")
sys.exit(0 if got == n and h.hexdigest() == want else 1)
EOF
        ); then
            pass "TCP: 32 MiB echoed both ways at once through the proxy: $out"
        else
            fail "TCP: 32 MiB echo through 127.0.0.1:$U: $out"
        fi
    else
        fail "docker run -p 127.0.0.1:$U:7/udp -p 127.0.0.1:$U:7"
    fi
fi

# ---------------------------------------------------------------- 4. all addresses

A=
if A=$(free_port) && CT_A=$(docker run -d -p "$A:80" "$IMAGE" httpd -f -p 80 -h /www 2>>"$ROOT/cli.log"); then
    A_IP=$(container_ip "$CT_A")
    page_at() { [ "$(curl -s --max-time 3 "http://$1:$A/")" = hello-from-berth ]; }
    wait_until 20 page_at 127.0.0.1 && pass "-p $A:80: page via 127.0.0.1" ||
        fail "-p $A:80: no page via 127.0.0.1"
    n=$(proxies_for_port "$A" | wc -l)
    say "dockerd runs $n proxies for -p $A:80:"
    proxies_for_port "$A" | sed 's/^/    /'
    if proxies_for_port "$A" | grep -q -- "-host-ip :: "; then
        wait_until 20 page_at '[::1]' && pass "-p $A:80: page via [::1] (-host-ip ::, IPv4 container)" ||
            fail "-p $A:80: no page via [::1]"
    fi
    check_dnat "$A"
    # Hairpin: a container on the bridge asks for the gateway's address;
    # dockerd leaves traffic from the bridge to the proxy (no DNAT), which
    # relays it to the other container.
    # (busybox nc: its static wget crashes in the image)
    if out=$(docker run --rm "$IMAGE" sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 10 $GW $A" \
        2>>"$ROOT/cli.log") && [ "$(echo "$out" | tail -n 1)" = hello-from-berth ]; then
        pass "hairpin: a container got the page from $GW:$A"
    else
        fail "hairpin: a container asking $GW:$A got: '$out' $(tail -n 2 "$ROOT/cli.log")"
    fi
    if HP=$(docker run -d "$IMAGE" sh -c "sleep 20 | nc $GW $A" 2>>"$ROOT/cli.log"); then
        if wait_until 15 proxy_holding "$A" "$A_IP:80"; then
            pass "hairpin: a container's connection to $GW:$A is relayed by the proxy to $A_IP:80 (ss)"
        else
            fail "hairpin: no proxy of port $A connected to $A_IP:80: $(ss -Htnp state established 2>&1 | tr '\n' ';')"
        fi
        docker rm -f "$HP" >/dev/null 2>&1
    else
        fail "hairpin: docker run of the nc client"
    fi
    # The contrast, with iptables on: the gateway's address asked from this
    # namespace (neither loopback nor from the bridge) is DNATed straight to
    # the container, and no proxy holds that connection.
    if [ $IPTABLES = 1 ]; then
        hold_open "$GW" "$A"
        client_up() { [ -n "$(ss -Htn state established dst "$GW:$A" 2>/dev/null)" ]; }
        if wait_until 10 client_up && wait_until 10 page_at "$GW"; then
            sleep 1
            if proxy_holding "$A" "$A_IP:80"; then
                fail "DNAT: a proxy of port $A relays a client of $GW:$A, which dockerd's NAT rule should take"
            else
                pass "DNAT: a client of $GW:$A reaches the container without a proxy (the ss check tells the paths apart)"
            fi
        else
            fail "DNAT: no connection to $GW:$A"
        fi
        end_hold
    fi
    # With iptables on, an IPv6 client that is not on loopback still goes
    # through the proxy when the container has no IPv6: there is no NAT rule
    # for it. A non-loopback address of this namespace stands in for a
    # remote client.
    if [ $IPTABLES = 1 ] && proxies_for_port "$A" | grep -q -- "-host-ip :: "; then
        V6=fd00:be27::1
        ip -6 addr add "$V6/128" dev lo 2>/dev/null
        if [ -n "$(ip6tables -w -t nat -S 2>/dev/null | grep -e "--dport $A ")" ]; then
            fail "ip6tables: a NAT rule for port $A of an IPv4-only container: $(ip6tables -w -t nat -S | grep -e "--dport $A ")"
        fi
        hold_open "$V6" "$A"
        if wait_until 10 proxy_holding "$A" "$A_IP:80" && wait_until 10 page_at "[$V6]"; then
            pass "IPv6 client at [$V6]:$A of the IPv4-only container: relayed by the proxy (no NAT rule for it)"
        else
            fail "IPv6 client at [$V6]:$A: not relayed by a proxy of port $A: $(ss -Htnp state established 2>&1 | tr '\n' ';')"
        fi
        end_hold
    fi
else
    fail "docker run -p $A:80 (dockerd could not start its proxies; see dockerd.log)"
    grep -i 'proxy' "$ROOT/dockerd.log" | tail -n 5
fi

# ---------------------------------------------------------------- 4a. [::1] to IPv4

# An IPv6 host address for a container that has only IPv4: no NAT rule can
# do that, dockerd hands it to the proxy.
L=
if grep -q '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null; then
    L=$(free_port)
    if CT_L=$(docker run -d -p "[::1]:$L:80" "$IMAGE" httpd -f -p 80 -h /www 2>>"$ROOT/cli.log"); then
        if [ -n "$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}' "$CT_L")" ]; then
            fail "-p [::1]:$L:80: the container has an IPv6 address; this case needs an IPv4-only one"
        fi
        page_l() { [ "$(curl -s --max-time 3 "http://[::1]:$L/")" = hello-from-berth ]; }
        if wait_until 20 page_l; then
            pass "-p [::1]:$L:80 to an IPv4-only container: page via [::1]"
        else
            fail "-p [::1]:$L:80: no page via [::1]: $(curl -sS --max-time 3 "http://[::1]:$L/" 2>&1)"
        fi
        line=$(proxies_for_port "$L" | head -n 1)
        case "$line" in
        *"-host-ip ::1 "*"-container-ip $(container_ip "$CT_L") "*) pass "-p [::1]:$L:80: proxy ${line#* * }" ;;
        *) fail "-p [::1]:$L:80: expected a proxy from ::1 to the IPv4 address, got: ${line:-none}" ;;
        esac
    else
        fail "docker run -p [::1]:$L:80: $(tail -n 1 "$ROOT/cli.log")"
    fi
else
    echo "NOTE: no ::1 here: skipping -p [::1]:L:80"
fi

# ---------------------------------------------------------------- 4b. [::] then 127.0.0.1

# One container on [::]:B, another on 127.0.0.1:B: docker-proxy binds ::
# IPv6-only, so both start; a proxy that took IPv4 too would block the second.
B=
if grep -q . /proc/net/if_inet6 2>/dev/null; then
    B=$(free_port)
    if docker run -d -p "[::]:$B:80" "$IMAGE" httpd -f -p 80 -h /www >/dev/null 2>>"$ROOT/cli.log"; then
        if out=$(docker run -d -p "127.0.0.1:$B:80" "$IMAGE" httpd -f -p 80 -h /www 2>&1); then
            page_b() { [ "$(curl -s --max-time 3 "http://$1:$B/")" = hello-from-berth ]; }
            wait_until 20 page_b '[::1]' && wait_until 20 page_b 127.0.0.1 &&
                pass "-p [::]:$B:80 and -p 127.0.0.1:$B:80 side by side, both answer" ||
                fail "-p [::]:$B:80 / 127.0.0.1:$B:80: not both answering"
        else
            fail "-p 127.0.0.1:$B:80 after -p [::]:$B:80 failed: $(echo "$out" | grep -i -m 1 'proxy\|in use')"
        fi
    else
        fail "docker run -p [::]:$B:80"
    fi
fi

# ---------------------------------------------------------------- 5. port in use

H=$(free_port)
"$PY" -c "
import socket, time
s = socket.socket(); s.bind(('127.0.0.1', $H)); s.listen(1); time.sleep(120)" &
HOG_PID=$!
hog_ready() { "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $H), 1).close()" 2>/dev/null; }
wait_until 10 hog_ready
if out=$(docker run -d -p "127.0.0.1:$H:80" "$IMAGE" httpd -f -p 80 -h /www 2>&1); then
    fail "docker run on a host port in use succeeded: $out"
else
    case "$out" in
    *[Pp]roxy*|*"in use"*) pass "port in use: docker run failed with: $(echo "$out" | grep -i -m 1 'proxy\|in use')" ;;
    *) fail "port in use: unexpected error: $out" ;;
    esac
fi
kill "$HOG_PID" 2>/dev/null
wait "$HOG_PID" 2>/dev/null
HOG_PID=

# ---------------------------------------------------------------- 3b. flags

# Every proxy dockerd runs now, by its command line: dockerd 28+ hands the
# bound socket over (-use-listen-fd), older ones let the proxy bind.
proxies >"$ROOT/proxies.all"
say "dockerd $DOCKERD_VERSION runs $(wc -l <"$ROOT/proxies.all") proxies, with these arguments:"
while read -r pid exe args; do
    echo "    $args"
    if [ $LISTEN_FD = 1 ]; then
        case " $args " in
        *" -use-listen-fd "*) ;;
        *) fail "dockerd $DOCKERD_VERSION did not pass -use-listen-fd to proxy $pid: $args" ;;
        esac
    else
        case " $args " in
        *"-use-listen-fd"*) fail "dockerd $DOCKERD_VERSION passed -use-listen-fd to proxy $pid: $args" ;;
        esac
    fi
done <"$ROOT/proxies.all"
if [ ! -s "$ROOT/proxies.all" ]; then
    fail "no proxies running before the stop checks"
elif [ $LISTEN_FD = 1 ]; then
    pass "dockerd $DOCKERD_VERSION passed -use-listen-fd to every proxy (the bound socket as fd 4)"
else
    pass "dockerd $DOCKERD_VERSION passed -use-listen-fd to no proxy (berth binds)"
fi

# ---------------------------------------------------------------- 6. stop, rm -f

if docker stop -t 1 "$CT" >/dev/null; then
    if wait_until 20 no_proxies_for_port "$P"; then
        pass "port $P: proxy gone after docker stop"
    else
        fail "port $P: proxy still running after docker stop: $(proxies_for_port "$P")"
    fi
else
    fail "docker stop $CT"
fi
ids=$(docker ps -aq)
docker rm -f $ids >/dev/null || fail "docker rm -f"
for port in $U $A $L $B; do
    if wait_until 20 no_proxies_for_port "$port"; then
        pass "port $port: proxy gone after docker rm -f"
    else
        fail "port $port: proxy still running after docker rm -f: $(proxies_for_port "$port")"
    fi
done
if [ -n "$(proxies)" ]; then
    fail "proxies left: $(proxies)"
fi
if grep -E 'level=(error|warning).*(proxy|userland)' "$ROOT/dockerd.log" >/dev/null; then
    echo "NOTE: dockerd logged proxy warnings/errors:"
    grep -E 'level=(error|warning).*(proxy|userland)' "$ROOT/dockerd.log" | tail -n 10
fi

if [ $FAILS -ne 0 ]; then
    echo "$FAILS check(s) failed (dockerd $DOCKERD_VERSION, $NETMODE)"
    exit 1
fi
echo "all checks passed (dockerd $DOCKERD_VERSION, $NETMODE)"
exit 0
