#!/bin/bash
# berth as dockerd's userland proxy, for real.
#
# Starts a private dockerd (own data/exec roots, socket, containerd
# namespace and bridge; --iptables=false so every published-port packet goes
# through the proxy) with --userland-proxy-path=berth, imports a busybox
# image carrying a static udp_echo, and checks:
#   1. TCP:  docker run -p 127.0.0.1:P:80 httpd, curl through it
#   2. UDP:  docker run -p 127.0.0.1:U:7/udp udp_echo, a datagram round trip
#   3. the proxies are berth processes, children of dockerd, run with
#      docker-proxy's flags
#   4. -p P:80 (all addresses): dockerd runs one proxy on 0.0.0.0 and, with
#      IPv6, one on :: (IPv4 container address); both answer
#   5. a host port already in use: docker run fails with the proxy's error
#   6. docker rm -f: the berth processes go away
# Always stops dockerd and removes everything it made (trap).
#
# Env: BERTH (default <repo>/build/berth), UDP_ECHO_STATIC (static
# udp_echo; without it the UDP part is skipped with a message),
# BERTH_TEST_ROOT (directory for the daemon's root, default /tmp).
# Exit 0 pass, 1 fail, 77 skip (not root / no dockerd / no static busybox).

set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BERTH=${BERTH:-$REPO/build/berth}
UDP_ECHO_STATIC=${UDP_ECHO_STATIC:-$REPO/build/tests/e2e/udp_echo_static}
PY=/usr/bin/python3
IMAGE=berth-test/busybox

skip() { echo "SKIP: $*"; exit 77; }
say() { echo "[$(date +%T)] $*"; }
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
pass() { echo "ok: $*"; }

[ "$(id -u)" = 0 ] || skip "needs root"
command -v dockerd >/dev/null && command -v docker >/dev/null || skip "dockerd/docker not installed (apt-get install docker.io)"
command -v ip >/dev/null || skip "iproute2 not installed"
[ -x "$BERTH" ] || { echo "FAIL: berth not found at $BERTH"; exit 1; }
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || skip "busybox not installed (apt-get install busybox-static)"
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    skip "$BUSYBOX is dynamically linked (apt-get install busybox-static)"
fi
BERTH=$(readlink -f "$BERTH")

# Under BERTH_TEST_ROOT when set (.ci/run sweeps the pidfiles there).
ROOT=$(mktemp -d "${BERTH_TEST_ROOT:-/tmp}/berth-dockerd.XXXXXX")
BR=berthe2e$$
BR=${BR:0:15}
DOCKERD_PID=
HOG_PID=
export DOCKER_HOST=unix://$ROOT/docker.sock
export DOCKER_CONFIG=$ROOT/cli

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    [ -n "$HOG_PID" ] && kill "$HOG_PID" 2>/dev/null
    if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
        ids=$(timeout 30 docker ps -aq 2>/dev/null)
        [ -n "$ids" ] && timeout 60 docker rm -f $ids >/dev/null 2>&1
        kill -TERM "$DOCKERD_PID"
        for _ in $(seq 1 100); do
            kill -0 "$DOCKERD_PID" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$DOCKERD_PID" 2>/dev/null
    fi
    # Whatever this daemon started and left behind (its containerd, shims):
    # found by our private paths in their command lines, killed by pid.
    pslist=$(ps -eo pid=,args=)
    while read -r pid args; do
        case "$args" in
        *"$ROOT"*) [ "$pid" != "$$" ] && kill -KILL "$pid" 2>/dev/null ;;
        esac
    done <<<"$pslist"
    # Mounts under our root, deepest first.
    awk -v r="$ROOT" 'index($2, r) == 1 {print $2}' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null; done
    ip link del "$BR" 2>/dev/null
    if [ $rc -ne 0 ] && [ -f "$ROOT/dockerd.log" ]; then
        echo "--- last lines of dockerd.log:"
        tail -n 40 "$ROOT/dockerd.log"
    fi
    rm -rf "$ROOT"
    exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM

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

# wait_until SECONDS CMD...: run CMD every 0.2 s until it succeeds.
wait_until() {
    local secs=$1; shift
    local end=$((SECONDS + secs))
    until "$@"; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.2
    done
}

# Proxy processes of our dockerd: "pid exe args" per line.
proxies() {
    local pid
    for pid in $(ps -o pid= --ppid "$DOCKERD_PID"); do
        local exe
        exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
        case "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" in
        *-proto*-host-port*) echo "$pid $exe $(tr '\0' ' ' <"/proc/$pid/cmdline")" ;;
        esac
    done
}
proxies_for_port() { proxies | grep -- "-host-port $1 " || true; }
no_proxies_for_port() { [ -z "$(proxies_for_port "$1")" ]; }
has_proxy_for_port() { [ -n "$(proxies_for_port "$1")" ]; }

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
ip link add name "$BR" type bridge || { echo "FAIL: cannot create bridge $BR"; exit 1; }
ip addr add "$SUBNET.1/24" dev "$BR"
ip link set "$BR" up

mkdir -p "$ROOT/data" "$ROOT/exec" "$DOCKER_CONFIG"
echo '{}' >"$ROOT/daemon.json"
say "starting dockerd in $ROOT (bridge $BR $SUBNET.1/24, proxy $BERTH)"
dockerd --config-file "$ROOT/daemon.json" \
    --data-root "$ROOT/data" --exec-root "$ROOT/exec" \
    --pidfile "$ROOT/dockerd.pid" -H "$DOCKER_HOST" \
    --containerd-namespace "berth-e2e-$$" \
    --containerd-plugins-namespace "berth-e2e-$$-plugins" \
    --bridge "$BR" --iptables=false --ip6tables=false \
    --ip-forward=false --ip-masq=false \
    --userland-proxy=true --userland-proxy-path="$BERTH" \
    >"$ROOT/dockerd.log" 2>&1 &
DOCKERD_PID=$!

ping_ok() { curl -sf --max-time 2 --unix-socket "$ROOT/docker.sock" http://d/_ping >/dev/null 2>&1; }
if ! wait_until 60 ping_ok; then
    kill -0 "$DOCKERD_PID" 2>/dev/null || { echo "FAIL: dockerd exited"; exit 1; }
    echo "FAIL: dockerd did not answer /_ping within 60 s"
    exit 1
fi
say "dockerd up (pid $DOCKERD_PID)"

# ---------------------------------------------------------------- image

IMG=$ROOT/img
mkdir -p "$IMG/bin" "$IMG/www"
cp "$BUSYBOX" "$IMG/bin/busybox"
for a in sh httpd nc sleep cat echo hostname; do ln -s busybox "$IMG/bin/$a"; done
echo hello-from-berth >"$IMG/www/index.html"
HAVE_UDP=1
if [ -x "$UDP_ECHO_STATIC" ] && ! ldd "$UDP_ECHO_STATIC" >/dev/null 2>&1; then
    cp "$UDP_ECHO_STATIC" "$IMG/bin/udp_echo"
else
    HAVE_UDP=0
    echo "NOTE: no static udp_echo at $UDP_ECHO_STATIC: skipping the UDP checks"
fi
tar -C "$IMG" -c . | docker import - "$IMAGE" >/dev/null || { echo "FAIL: docker import"; exit 1; }

# ---------------------------------------------------------------- 1. TCP

P=$(free_port)
CT=$(docker run -d -p "127.0.0.1:$P:80" "$IMAGE" httpd -f -p 80 -h /www 2>>"$ROOT/cli.log") ||
    { echo "FAIL: docker run -p 127.0.0.1:$P:80"; exit 1; }
get_page() { [ "$(curl -s --max-time 3 "http://127.0.0.1:$P/")" = hello-from-berth ]; }
if wait_until 20 get_page; then
    pass "TCP: curl 127.0.0.1:$P through the proxy got the page"
else
    fail "TCP: curl 127.0.0.1:$P did not get the page: $(curl -sS --max-time 3 "http://127.0.0.1:$P/" 2>&1)"
fi
# A bigger transfer, to see data flow both ways through the relay.
big_ok() {
    docker exec "$CT" sh -c 'i=0; while [ $i -lt 2000 ]; do echo 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef; i=$((i+1)); done > /www/big.txt' &&
    [ "$(curl -s --max-time 10 "http://127.0.0.1:$P/big.txt" | wc -c)" = 130000 ]
}
if big_ok; then pass "TCP: 130 kB page intact"; else fail "TCP: 130 kB page not intact"; fi

# ---------------------------------------------------------------- 3. processes

check_proxy_process() {
    local port=$1 proto=$2 line
    line=$(proxies_for_port "$port" | head -n 1)
    if [ -z "$line" ]; then
        fail "no proxy child of dockerd for port $port"
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

# ---------------------------------------------------------------- 2. UDP

U=
if [ $HAVE_UDP = 1 ]; then
    U=$(free_port)
    if docker run -d -p "127.0.0.1:$U:7/udp" "$IMAGE" udp_echo 7 >/dev/null 2>>"$ROOT/cli.log"; then
        check_proxy_process "$U" udp
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
    else
        fail "docker run -p 127.0.0.1:$U:7/udp"
    fi
fi

# ---------------------------------------------------------------- 4. all addresses

A=$(free_port)
if docker run -d -p "$A:80" "$IMAGE" httpd -f -p 80 -h /www >/dev/null 2>>"$ROOT/cli.log"; then
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
else
    fail "docker run -p $A:80 (dockerd could not start its proxies; see dockerd.log)"
    grep -i 'proxy' "$ROOT/dockerd.log" | tail -n 5
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

# ---------------------------------------------------------------- 6. rm -f

ids=$(docker ps -aq)
docker rm -f $ids >/dev/null || fail "docker rm -f"
for port in $P $U $A $B; do
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
    echo "$FAILS check(s) failed"
    exit 1
fi
echo "all checks passed"
exit 0
