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
# shellcheck source=tests/e2e/dockerd_lib.sh
. "$HERE/dockerd_lib.sh"
DOCKER_PROXY=${DOCKER_PROXY:-/usr/sbin/docker-proxy}
TPROXY_SCRIPT=${BERTH_TPROXY:-$REPO/scripts/berth-tproxy}
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

need_common
for t in ip nsenter; do
    command -v $t >/dev/null || skip "$t not installed"
done
[ -x "$TPROXY_SCRIPT" ] || command -v nft >/dev/null || skip "nft not installed (apt-get install nftables)"
[ -x "$DOCKER_PROXY" ] || skip "no docker-proxy at $DOCKER_PROXY"
is_static "$UDP_ECHO_STATIC" || skip "no static udp_echo at $UDP_ECHO_STATIC (the report server in the container)"

if [ $MODERN = 1 ] && fetch_modern_dockerd && [ -x "$MODERN_TREE/usr/sbin/docker-proxy" ]; then
    DOCKER_PROXY=$MODERN_TREE/usr/sbin/docker-proxy
fi
need_dockerd

# The "host" namespace: this script again, in network and mount namespaces
# of its own (dockerd_lib.sh's enter_test_namespaces).
export DOCKER_PROXY
enter_test_namespaces "${ARGS[@]}"
setup_test_namespaces
HOST_NS=$(readlink /proc/$$/ns/net)

GW=10.253.0.1
CLIENT_PID=
TPROXY=
make_test_root berth-transparent berthtp

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

own_cleanup() {
    # The client namespace lives as long as its holder; the veth goes with it.
    if [ -n "$CLIENT_PID" ]; then
        kill -KILL "$CLIENT_PID" 2>/dev/null
        wait "$CLIENT_PID" 2>/dev/null
    fi
    tproxy_down
    ip link del bt-host 2>/dev/null
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

add_bridge "$GW"
say "namespaces: client $CLIENT_IP (pid $CLIENT_PID) -- veth -- host $HOST_IP, bridge $BR $GW/24; tproxy: $TPROXY_HOW"

# ---------------------------------------------------------------- dockerd

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
        stage_image sh
        import_image
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
