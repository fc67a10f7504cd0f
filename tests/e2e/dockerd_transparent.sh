#!/bin/bash
# Transparent mode through dockerd, for real: the container sees the client.
#
#   dockerd_transparent.sh [--modern]
#
# Everything happens in network and mount namespaces this script makes (the
# machine's own namespace gets no route, rule, link or mount):
#
#   client namespace            "host" namespace (this script, dockerd)
#   10.252.1.2 ---- veth ---- 10.252.1.1      bridge GW ---- container
#
# The host namespace runs a private dockerd with --iptables=false, so every
# connection to a published port goes through the userland proxy. (With
# iptables on, a remote IPv4 client is DNATed to the container and keeps its
# address without any proxy: the proxy path is the one where transparent
# mode matters.) It also holds the tproxy routing of the kernel's
# Documentation/networking/tproxy.rst (scripts/berth-tproxy up when it is
# there, else the same rules written here): the container's replies to the
# client's address come back through the bridge gateway, where a packet of
# a transparent socket is marked and routed to the local stack.
#
# A busybox container runs `udp_echo -r`, which answers each TCP connection
# (port 80) and each UDP datagram (port 53) with the peer it sees, and is
# published on 10.252.1.1. The client namespace connects and reads that
# line, three times, each with a fresh dockerd on the same data root:
#   1. --userland-proxy-path=/usr/sbin/docker-proxy, BERTH_TRANSPARENT=1 in
#      dockerd's environment (ignored): the container sees the gateway
#   2. berth, without BERTH_TRANSPARENT: the gateway (the switch is off)
#   3. berth, BERTH_TRANSPARENT=1 in dockerd's environment: the container
#      sees 10.252.1.2 and the client's own port, TCP and UDP; the proxies
#      are berth children of dockerd with BERTH_TRANSPARENT=1 in
#      /proc/PID/environ
#   4. the same without the tproxy routing: berth falls back, the gateway,
#      TCP and UDP still answered
#   5. BERTH_TRANSPARENT=maybe: docker run fails with berth's line naming it
# Each peer line is printed. Always stops dockerd (and its containerd and
# shims), removes the namespaces, mounts and bridge (trap).
#
# --modern runs today's dockerd (scripts/modern-docker, as dockerd_dropin.sh
# does; skipped when it cannot be fetched), which binds the ports itself and
# hands them to the proxy.
#
# Env: BERTH (default <repo>/build/berth), UDP_ECHO_STATIC (the static
# udp_echo: required), DOCKER_PROXY (default /usr/sbin/docker-proxy),
# BERTH_TPROXY (default <repo>/scripts/berth-tproxy; a path that does not
# exist makes the test write the kernel doc's rules itself),
# DOCKERD, BERTH_TEST_ROOT (default /tmp), BERTH_CACHE.
# Exit 0 pass, 1 fail, 77 skip (not root, no dockerd, docker-proxy, nft,
# static busybox or static udp_echo).

set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BERTH=${BERTH:-$REPO/build/berth}
UDP_ECHO_STATIC=${UDP_ECHO_STATIC:-$REPO/build/tests/e2e/udp_echo_static}
DOCKER_PROXY=${DOCKER_PROXY:-/usr/sbin/docker-proxy}
TPROXY_SCRIPT=${BERTH_TPROXY:-$REPO/scripts/berth-tproxy}
PY=/usr/bin/python3
IMAGE=berth-test/busybox
HOST_IP=10.252.1.1
CLIENT_IP=10.252.1.2
MODERN=0
ARGS=("$@")
for a in "$@"; do
    case "$a" in
    --modern) MODERN=1 ;;
    *) echo "usage: dockerd_transparent.sh [--modern]" >&2; exit 2 ;;
    esac
done

skip() { echo "SKIP: $*"; exit 77; }
say() { echo "[$(date +%T)] $*"; }
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
pass() { echo "ok: $*"; }

[ "$(id -u)" = 0 ] || skip "needs root"
command -v dockerd >/dev/null && command -v docker >/dev/null || skip "dockerd/docker not installed (apt-get install docker.io)"
for t in ip unshare nsenter; do
    command -v $t >/dev/null || skip "$t not installed"
done
[ -x "$TPROXY_SCRIPT" ] || command -v nft >/dev/null || skip "nft not installed (apt-get install nftables)"
[ -x "$DOCKER_PROXY" ] || skip "no docker-proxy at $DOCKER_PROXY"
[ -x "$BERTH" ] || { echo "FAIL: berth not found at $BERTH"; exit 1; }
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] && ! ldd "$BUSYBOX" >/dev/null 2>&1 || skip "no static busybox (apt-get install busybox-static)"
[ -x "$UDP_ECHO_STATIC" ] && ! ldd "$UDP_ECHO_STATIC" >/dev/null 2>&1 ||
    skip "no static udp_echo at $UDP_ECHO_STATIC (the report server in the container)"
BERTH=$(readlink -f "$BERTH")

# Today's dockerd, fetched before entering the namespace, which has no way out.
if [ $MODERN = 1 ] && [ -z "${BERTH_TP_IN_NETNS:-}" ]; then
    err=$(mktemp)
    if ! tree=$("$REPO/scripts/modern-docker" 2>"$err"); then
        why=$(cat "$err")
        rm -f "$err"
        skip "today's dockerd is not available: ${why:-scripts/modern-docker failed}"
    fi
    rm -f "$err"
    export DOCKERD=$tree/usr/sbin/dockerd
    [ -x "$tree/usr/sbin/docker-proxy" ] && export DOCKER_PROXY=$tree/usr/sbin/docker-proxy
fi
DOCKERD=${DOCKERD:-$(command -v dockerd)}
[ -x "$DOCKERD" ] || skip "no dockerd at $DOCKERD"

# The "host" namespace: this script again, in new network and mount
# namespaces, with a private /run (its own containerd) and a sysfs view of
# the new namespace's interfaces (as dockerd_dropin.sh --iptables does).
if [ -z "${BERTH_TP_IN_NETNS:-}" ]; then
    case "$(readlink -f "${BERTH_TEST_ROOT:-/tmp}")/" in
    /run/*) echo "FAIL: BERTH_TEST_ROOT under /run is hidden by the namespace's own /run"; exit 1 ;;
    esac
    BERTH_TP_IN_NETNS="$(readlink /proc/self/ns/net) $(readlink /proc/self/ns/mnt)"
    export BERTH_TP_IN_NETNS DOCKERD DOCKER_PROXY
    exec unshare --net --mount --propagation slave -- /bin/bash "$0" "${ARGS[@]}"
fi
# Never change a namespace that is not this test's own: unshare ran this
# without forking, so the parent is still in the namespaces recorded above.
for ns in net mnt; do
    mine=$(readlink "/proc/$$/ns/$ns")
    parent=$(readlink "/proc/$PPID/ns/$ns")
    case " $BERTH_TP_IN_NETNS " in
    *" $parent "*) ;;
    *) parent= ;;
    esac
    if [ -z "$mine" ] || [ -z "$parent" ] || [ "$mine" = "$parent" ]; then
        echo "FAIL: not in a $ns namespace of the test's own ($mine, parent ${parent:-unknown})"
        exit 1
    fi
done
HOST_NS=$(readlink /proc/$$/ns/net)
ip link set lo up || { echo "FAIL: lo up in the test namespace"; exit 1; }
mount -t tmpfs -o mode=0755 berth-tp-run /run &&
    mkdir -p /run/berth-sysfs && mount -t sysfs berth-tp-sysfs /run/berth-sysfs &&
    mount --bind /run/berth-sysfs/class/net /sys/class/net &&
    mount --bind /run/berth-sysfs/devices/virtual/net /sys/devices/virtual/net ||
    { echo "FAIL: private /run and sysfs in the test namespace"; exit 1; }
if ip route show default | grep -q .; then
    echo "FAIL: the test namespace has a default route"; exit 1
fi

ROOT=$(mktemp -d "${BERTH_TEST_ROOT:-/tmp}/berth-transparent.XXXXXX")
BR=berthtp$$
BR=${BR:0:15}
GW=10.253.0.1
DOCKERD_PID=
CLIENT_PID=
TPROXY=
export DOCKER_HOST=unix://$ROOT/docker.sock
export DOCKER_CONFIG=$ROOT/cli

# Processes this test's dockerd started and left (containerd, shims), found
# by the private paths in their command lines, killed by pid.
kill_leftovers() {
    local pslist pid args
    pslist=$(ps -eo pid=,args=)
    while read -r pid args; do
        case "$args" in
        *"$ROOT"*) [ "$pid" != "$$" ] && kill -KILL "$pid" 2>/dev/null ;;
        esac
    done <<<"$pslist"
}

# Gone or a zombie (reaped by the wait below).
exited() { [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }

stop_dockerd() {
    [ -n "$DOCKERD_PID" ] || return 0
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
        local ids
        ids=$(timeout 30 docker ps -aq 2>/dev/null)
        [ -n "$ids" ] && timeout 60 docker rm -f $ids >/dev/null 2>&1
        kill -TERM "$DOCKERD_PID"
        for _ in $(seq 1 75); do
            exited "$DOCKERD_PID" && break
            sleep 0.2
        done
        kill -KILL "$DOCKERD_PID" 2>/dev/null
    fi
    wait "$DOCKERD_PID" 2>/dev/null
    DOCKERD_PID=
    kill_leftovers
}

tproxy_down() {
    case "$TPROXY" in
    script) "$TPROXY_SCRIPT" down >/dev/null 2>&1 ;;
    rules)
        nft delete table inet berth_tp 2>/dev/null
        ip rule del fwmark 1 lookup 100 2>/dev/null
        ip route flush table 100 2>/dev/null
        ;;
    esac
    TPROXY=
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    stop_dockerd
    kill_leftovers
    # The client namespace lives as long as its holder; the veth goes with it.
    if [ -n "$CLIENT_PID" ]; then
        kill -KILL "$CLIENT_PID" 2>/dev/null
        wait "$CLIENT_PID" 2>/dev/null
    fi
    tproxy_down
    ip link del bt-host 2>/dev/null
    ip link del "$BR" 2>/dev/null
    awk -v r="$ROOT" 'index($2, r) == 1 {print $2}' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null; done
    if [ $rc -ne 0 ] && [ -f "$ROOT/dockerd.log" ]; then
        echo "--- last lines of dockerd.log:"
        tail -n 30 "$ROOT/dockerd.log"
    fi
    rm -rf "$ROOT"
    # This namespace's /run and sysfs mounts, and the namespaces themselves,
    # end with this process: nothing of the test stays in another one.
    exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM

wait_until() {
    local secs=$1; shift
    local end=$((SECONDS + secs))
    until "$@"; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.2
    done
}

# ---------------------------------------------------------------- topology

# The client namespace: held by a sleep of our own, joined by a veth.
unshare --net sleep 600 &
CLIENT_PID=$!
client_ns_ready() {
    local ns
    ns=$(readlink "/proc/$CLIENT_PID/ns/net" 2>/dev/null) && [ "$ns" != "$HOST_NS" ]
}
wait_until 5 client_ns_ready || { echo "FAIL: the client namespace did not appear"; exit 1; }
in_client() { nsenter -t "$CLIENT_PID" -n "$@"; }
ip link add bt-host type veth peer name bt-client netns "$CLIENT_PID" &&
    ip addr add "$HOST_IP/24" dev bt-host && ip link set bt-host up &&
    in_client ip link set lo up && in_client ip addr add "$CLIENT_IP/24" dev bt-client &&
    in_client ip link set bt-client up ||
    { echo "FAIL: veth between the host and client namespaces"; exit 1; }
veth_up() { ip -o link show bt-host | grep -q LOWER_UP; }
wait_until 5 veth_up || { echo "FAIL: the veth did not come up: $(ip -o link show bt-host)"; exit 1; }

# The tproxy routing, before any proxy starts (berth checks it at start).
if [ -x "$TPROXY_SCRIPT" ]; then
    TPROXY=script
    "$TPROXY_SCRIPT" up || { echo "FAIL: scripts/berth-tproxy up"; exit 1; }
    "$TPROXY_SCRIPT" status | sed 's/^/    /'
    TPROXY_HOW="scripts/berth-tproxy up"
else
    TPROXY=rules
    ip rule add fwmark 1 lookup 100 && ip route add local 0.0.0.0/0 dev lo table 100 &&
        nft 'table inet berth_tp { chain p { type filter hook prerouting priority mangle; socket transparent 1 meta mark set 1 accept; }; }' ||
        { echo "FAIL: tproxy rules (ip rule, local route, nft socket match)"; exit 1; }
    TPROXY_HOW="ip rule fwmark 1 lookup 100, local 0.0.0.0/0 dev lo table 100, nft socket transparent 1 -> mark 1"
fi

ip link add name "$BR" type bridge && ip addr add "$GW/24" dev "$BR" && ip link set "$BR" up ||
    { echo "FAIL: cannot create bridge $BR"; exit 1; }
mkdir -p "$ROOT/data" "$ROOT/exec" "$DOCKER_CONFIG"
echo '{}' >"$ROOT/daemon.json"
say "namespaces: client $CLIENT_IP (pid $CLIENT_PID) -- veth -- host $HOST_IP, bridge $BR $GW/24; tproxy: $TPROXY_HOW"

# ---------------------------------------------------------------- dockerd

# start_dockerd PROXY [VAR=VALUE...]: a fresh dockerd on the same roots,
# with the environment given added to this script's.
start_dockerd() {
    local proxy=$1; shift
    env -u BERTH_TRANSPARENT -u BERTH_PROXY_PROTOCOL -u BERTH_TP_IN_NETNS "$@" "$DOCKERD" --config-file "$ROOT/daemon.json" \
        --data-root "$ROOT/data" --exec-root "$ROOT/exec" \
        --pidfile "$ROOT/dockerd.pid" -H "$DOCKER_HOST" \
        --containerd-namespace "berth-tp-$$" \
        --containerd-plugins-namespace "berth-tp-$$-plugins" \
        --bridge "$BR" --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
        --userland-proxy=true --userland-proxy-path="$proxy" \
        >>"$ROOT/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    ping_ok() { curl -sf --max-time 2 --unix-socket "$ROOT/docker.sock" http://d/_ping >/dev/null 2>&1; }
    if ! wait_until 60 ping_ok; then
        echo "FAIL: dockerd ($proxy) did not answer /_ping within 60 s"
        exit 1
    fi
}

# Proxy processes of our dockerd: "pid exe args" per line.
proxies() {
    local pid exe
    for pid in $(ps -o pid= --ppid "$DOCKERD_PID"); do
        exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
        case "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" in
        *-proto*-host-port*) echo "$pid $exe $(tr '\0' ' ' <"/proc/$pid/cmdline")" ;;
        esac
    done
}

# ask PROTO PORT: from the client namespace, the line the container's
# report server answers, then the client's own address: "IP PORT|IP PORT".
ask() {
    in_client "$PY" - "$1" "$HOST_IP" "$2" <<'EOF'
import socket, sys, time
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
end, last = time.monotonic() + 20, "nothing"
while time.monotonic() < end:
    try:
        if proto == "tcp":
            s = socket.create_connection((host, port), 2)
            s.settimeout(3)
            data = b""
            while len(data) < 200:
                b = s.recv(200)
                if not b:
                    break
                data += b
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(1)
            s.connect((host, port))
            s.send(b"who am i")
            data = s.recv(200)
        me = s.getsockname()
        s.close()
        if data.endswith(b"\n"):
            print(f"{data.decode().strip()}|{me[0]} {me[1]}")
            sys.exit(0)
        last = f"answer {data!r}"
    except OSError as e:
        last = str(e)
    time.sleep(0.2)
print(f"no answer from {host}:{port}/{proto} within 20 s: {last}")
sys.exit(1)
EOF
}

IMPORTED=0
# run_case NAME PROXY WANT [VAR=VALUE...]: dockerd with PROXY and that
# environment, the report container published on HOST_IP, TCP and UDP
# asked from the client; WANT is "client" or "gateway".
run_case() {
    local name=$1 proxy=$2 want=$3; shift 3
    say "--- $name: dockerd $("$DOCKERD" --version | sed 's/^Docker version //'), proxy $proxy, env: ${*:-(no BERTH_*)}"
    start_dockerd "$proxy" "$@"
    if [ $IMPORTED = 0 ]; then
        local img=$ROOT/img
        mkdir -p "$img/bin"
        cp "$BUSYBOX" "$img/bin/busybox" && ln -s busybox "$img/bin/sh" &&
            cp "$UDP_ECHO_STATIC" "$img/bin/udp_echo" &&
            tar -C "$img" -c . | docker import - "$IMAGE" >/dev/null ||
            { echo "FAIL: docker import"; exit 1; }
        IMPORTED=1
    fi
    # Any port: nothing but this test binds in its own namespace.
    local p=$((20000 + RANDOM % 10000)) u=$((20000 + RANDOM % 10000))
    [ $u = $p ] && u=$((p + 1))
    local ct
    ct=$(docker run -d -p "$HOST_IP:$p:80" -p "$HOST_IP:$u:53/udp" "$IMAGE" \
        sh -c 'udp_echo -r -t 80 & exec udp_echo -r 53' 2>>"$ROOT/cli.log") ||
        { fail "$name: docker run -p $HOST_IP:$p:80 -p $HOST_IP:$u:53/udp: $(tail -n 1 "$ROOT/cli.log")"; stop_dockerd; return; }
    say "container ${ct:0:12} at $(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$ct"), published $HOST_IP:$p/tcp and $HOST_IP:$u/udp"
    local proto port out seen me
    for proto in tcp udp; do
        [ $proto = tcp ] && port=$p || port=$u
        if ! out=$(ask $proto "$port"); then
            fail "$name: $proto: $out"
            continue
        fi
        seen=${out%%|*}
        me=${out#*|}
        echo "    $name $proto: the container sees '$seen' (client $me)"
        if [ "$want" = client ]; then
            [ "$seen" = "$me" ] && pass "$name $proto: the container sees the client itself, $seen" ||
                fail "$name $proto: the container sees '$seen', not the client $me"
        else
            [ "${seen% *}" = "$GW" ] && pass "$name $proto: the container sees the bridge gateway, $seen" ||
                fail "$name $proto: the container sees '$seen', not the gateway $GW"
        fi
    done
    # The proxies are dockerd's children running PROXY, with dockerd's
    # environment.
    local pid exe args n=0
    while read -r pid exe args; do
        [ -n "$pid" ] || continue
        n=$((n + 1))
        [ "$exe" = "$(readlink -f "$proxy")" ] || fail "$name: proxy $pid runs $exe, not $proxy"
        local env
        env=$(tr '\0' '\n' <"/proc/$pid/environ" | grep -E '^BERTH_(TRANSPARENT|PROXY_PROTOCOL)=' | tr '\n' ' ')
        echo "    proxy pid $pid (child of dockerd $DOCKERD_PID): $exe $args; environ: ${env:-no BERTH_*}"
        case " $* " in
        *" BERTH_TRANSPARENT=1 "*)
            case " $env " in
            *" BERTH_TRANSPARENT=1 "*) ;;
            *) fail "$name: proxy $pid has no BERTH_TRANSPARENT=1 in /proc/$pid/environ" ;;
            esac ;;
        esac
    done < <(proxies)
    [ $n = 2 ] && pass "$name: $n proxies, children of dockerd, running $proxy" ||
        fail "$name: $n proxy children of dockerd, expected 2: $(proxies | tr '\n' ';')"
    stop_dockerd
}

# A value berth cannot read: the proxy refuses to start, and docker run
# fails with berth's line naming the variable and the value.
bad_value() {
    say "--- berth BERTH_TRANSPARENT=maybe"
    start_dockerd "$BERTH" BERTH_TRANSPARENT=maybe
    local p=$((20000 + RANDOM % 10000)) out
    if out=$(docker run -d -p "$HOST_IP:$p:80" "$IMAGE" sh -c 'udp_echo -r -t 80' 2>&1); then
        fail "BERTH_TRANSPARENT=maybe: docker run succeeded: $out"
    else
        out=$(echo "$out" | grep -m 1 "BERTH_TRANSPARENT")
        echo "    docker run: $out"
        case "$out" in
        *"BERTH_TRANSPARENT 'maybe'"*) pass "BERTH_TRANSPARENT=maybe: docker run fails with berth's reason" ;;
        *) fail "BERTH_TRANSPARENT=maybe: docker run failed without naming it: $out" ;;
        esac
    fi
    stop_dockerd
}

T0=$SECONDS
run_case docker-proxy "$DOCKER_PROXY" gateway BERTH_TRANSPARENT=1
run_case "berth (switch off)" "$BERTH" gateway
run_case "berth BERTH_TRANSPARENT=1" "$BERTH" client BERTH_TRANSPARENT=1
# Without the routing the replies to the client's address would not come
# back: berth sees that when a proxy starts and connects the usual way.
tproxy_down
run_case "berth BERTH_TRANSPARENT=1, no tproxy routing" "$BERTH" gateway BERTH_TRANSPARENT=1
bad_value

if [ $FAILS -ne 0 ]; then
    echo "$FAILS check(s) failed ($((SECONDS - T0)) s)"
    exit 1
fi
echo "all checks passed ($((SECONDS - T0)) s, dockerd --iptables=false, tproxy: $TPROXY_HOW)"
exit 0
