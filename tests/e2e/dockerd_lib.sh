# shellcheck shell=bash
# shellcheck disable=SC2034 # what it sets is for the scripts that source it
# Sourced by the bash e2e tests that run a private dockerd
# (dockerd_dropin.sh, dockerd_transparent.sh): what they share, so each
# script keeps only its own checks.
#
#   HERE=$(cd "$(dirname "$0")" && pwd)
#   . "$HERE/dockerd_lib.sh"
#
# Sets on sourcing (defaults from the environment where it says so):
#   REPO             the repository (from HERE, which the script sets)
#   BERTH            ${BERTH:-$REPO/build/berth}
#   UDP_ECHO_STATIC  ${UDP_ECHO_STATIC:-$REPO/build/tests/e2e/udp_echo_static}
#   PY IMAGE         the python to run helpers with, the image name to import
#   FAILS            the count of fail calls
#   DOCKERD_PID      empty until start_dockerd
#   DOCKERD_NETFLAGS dockerd's network flags for start_dockerd: iptables off
#                    (every published port through the proxy) unless the
#                    script sets another array
# BERTH_E2E_IN_NETNS in the environment tells a run that
# enter_test_namespaces re-executed from one that has not.

REPO=$(cd "$HERE/../.." && pwd)
BERTH=${BERTH:-$REPO/build/berth}
UDP_ECHO_STATIC=${UDP_ECHO_STATIC:-$REPO/build/tests/e2e/udp_echo_static}
PY=/usr/bin/python3
IMAGE=berth-test/busybox
FAILS=0
DOCKERD_PID=
DOCKERD_NETFLAGS=(--iptables=false --ip6tables=false --ip-forward=false --ip-masq=false)

skip() { echo "SKIP: $*"; exit 77; }
say() { echo "[$(date +%T)] $*"; }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
pass() { echo "ok: $*"; }

# wait_until SECONDS CMD...: run CMD every 0.2 s until it succeeds.
wait_until() {
    local secs=$1; shift
    local end=$((SECONDS + secs))
    until "$@"; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.2
    done
}

# is_static FILE: an executable that needs no shared library (it runs in
# the bare image).
is_static() { [ -x "$1" ] && ! ldd "$1" >/dev/null 2>&1; }

# need_common: skips (77) unless root with dockerd, docker and a static
# busybox (sets BUSYBOX); fails (1) without berth; makes BERTH absolute.
need_common() {
    [ "$(id -u)" = 0 ] || skip "needs root"
    if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
        skip "dockerd/docker not installed (apt-get install docker.io)"
    fi
    [ -x "$BERTH" ] || { echo "FAIL: berth not found at $BERTH"; exit 1; }
    BUSYBOX=$(command -v busybox || true)
    [ -n "$BUSYBOX" ] || skip "busybox not installed (apt-get install busybox-static)"
    is_static "$BUSYBOX" || skip "$BUSYBOX is dynamically linked (apt-get install busybox-static)"
    BERTH=$(readlink -f "$BERTH")
}

# fetch_modern_dockerd: today's dockerd (scripts/modern-docker), fetched or
# found in its cache before the namespaces, which have no way out: exports
# DOCKERD and sets MODERN_TREE (the unpacked package), or skips (77).
# Returns 1 without doing anything in a run enter_test_namespaces
# re-executed (DOCKERD came with the environment).
fetch_modern_dockerd() {
    [ -z "${BERTH_E2E_IN_NETNS:-}" ] || return 1
    local t0=$EPOCHREALTIME err why
    err=$(mktemp)
    if ! MODERN_TREE=$("$REPO/scripts/modern-docker" 2>"$err"); then
        why=$(cat "$err")
        rm -f "$err"
        skip "today's dockerd is not available: ${why:-scripts/modern-docker failed}"
    fi
    sed 's/^/  /' "$err"
    rm -f "$err"
    say "scripts/modern-docker: $MODERN_TREE ($(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}') s)"
    export DOCKERD=$MODERN_TREE/usr/sbin/dockerd
}

# need_dockerd: DOCKERD defaults to the one on PATH; skips (77) if it is
# not there.
need_dockerd() {
    DOCKERD=${DOCKERD:-$(command -v dockerd)}
    [ -x "$DOCKERD" ] || skip "no dockerd at $DOCKERD"
}

# enter_test_namespaces ARGS...: runs this script again, with ARGS, in new
# network and mount namespaces (exec: does not return), unless this run is
# that one already (returns). Exports DOCKERD and BERTH_E2E_IN_NETNS (the
# namespaces left, for setup_test_namespaces' check); export anything else
# the inner run needs before calling.
enter_test_namespaces() {
    [ -z "${BERTH_E2E_IN_NETNS:-}" ] || return 0
    command -v unshare >/dev/null || skip "unshare not installed (util-linux)"
    case "$(readlink -f "${BERTH_TEST_ROOT:-/tmp}")/" in
    /run/*) echo "FAIL: BERTH_TEST_ROOT under /run is hidden by the namespace's own /run"; exit 1 ;;
    esac
    BERTH_E2E_IN_NETNS="$(readlink /proc/self/ns/net) $(readlink /proc/self/ns/mnt)"
    export BERTH_E2E_IN_NETNS DOCKERD
    exec unshare --net --mount --propagation slave -- /bin/bash "$0" "$@"
}

# setup_test_namespaces: in the run enter_test_namespaces made, checks it
# is in namespaces of the test's own, then lo up, a private /run (no system
# containerd socket, own xtables lock) and a sysfs view of this namespace's
# interfaces over /sys/class/net (the rest of /sys, cgroups included,
# stays), and no default route (traffic can only reach the test's own
# links). Exits 1 on any failure.
setup_test_namespaces() {
    # Never mount over /run of a namespace that is not this test's own:
    # unshare ran this without forking, so the parent process is still in
    # the namespaces the outer run recorded, and this one is not.
    local ns mine parent
    for ns in net mnt; do
        mine=$(readlink "/proc/$$/ns/$ns")
        parent=$(readlink "/proc/$PPID/ns/$ns")
        case " ${BERTH_E2E_IN_NETNS:-} " in
        *" $parent "*) ;;
        *) parent= ;;
        esac
        if [ -z "$mine" ] || [ -z "$parent" ] || [ "$mine" = "$parent" ]; then
            echo "FAIL: not in a $ns namespace of the test's own ($mine, parent ${parent:-unknown})"
            exit 1
        fi
    done
    ip link set lo up || { echo "FAIL: lo up in the test namespace"; exit 1; }
    if ! { mount -t tmpfs -o mode=0755 berth-e2e-run /run &&
        mkdir -p /run/berth-sysfs && mount -t sysfs berth-e2e-sysfs /run/berth-sysfs &&
        mount --bind /run/berth-sysfs/class/net /sys/class/net &&
        mount --bind /run/berth-sysfs/devices/virtual/net /sys/devices/virtual/net; }; then
        echo "FAIL: private /run and sysfs in the test namespace"; exit 1
    fi
    if ip route show default | grep -q . || ip -6 route show default | grep -q .; then
        echo "FAIL: the test namespace has a default route"; exit 1
    fi
}

# make_test_root NAME BRIDGE: ROOT, a new directory
# ${BERTH_TEST_ROOT:-/tmp}/NAME.XXXXXX (.ci/run sweeps the pidfiles there),
# with the daemon's data, exec and CLI config directories and an empty
# daemon.json; BR, the name for the test's bridge (BRIDGE and this pid, at
# most 15 characters); DOCKER_HOST and DOCKER_CONFIG exported for docker.
# Installs cleanup on EXIT (and exit 1 on INT, TERM).
make_test_root() {
    ROOT=$(mktemp -d "${BERTH_TEST_ROOT:-/tmp}/$1.XXXXXX") ||
        { echo "FAIL: mktemp under ${BERTH_TEST_ROOT:-/tmp}"; exit 1; }
    BR=$2$$
    BR=${BR:0:15}
    export DOCKER_HOST=unix://$ROOT/docker.sock
    export DOCKER_CONFIG=$ROOT/cli
    mkdir -p "$ROOT/data" "$ROOT/exec" "$DOCKER_CONFIG"
    echo '{}' >"$ROOT/daemon.json"
    trap cleanup EXIT
    trap 'exit 1' INT TERM
}

# add_bridge GW: the bridge BR, up, with GW/24 (exits 1 if it cannot).
add_bridge() {
    if ! { ip link add name "$BR" type bridge && ip addr add "$1/24" dev "$BR" &&
        ip link set "$BR" up; }; then
        echo "FAIL: cannot create bridge $BR"; exit 1
    fi
}

# kill_leftovers: whatever this test's dockerd started and left behind
# (its containerd, shims), found by ROOT in their command lines, killed by
# pid.
kill_leftovers() {
    local pslist pid args
    pslist=$(ps -eo pid=,args=)
    while read -r pid args; do
        case "$args" in
        *"$ROOT"*) [ "$pid" != "$$" ] && kill -KILL "$pid" 2>/dev/null ;;
        esac
    done <<<"$pslist"
}

# start_dockerd PROXY [VAR=VALUE...]: a dockerd on ROOT's directories and
# socket, containerd namespace of its own, bridge BR, DOCKERD_NETFLAGS, with
# --userland-proxy-path=PROXY and the environment given added to this
# script's (the BERTH_* switches taken out first); sets DOCKERD_PID and
# waits for /_ping (exits 1 if it does not answer within 60 s). Appends to
# ROOT/dockerd.log.
start_dockerd() {
    local proxy=$1; shift
    env -u BERTH_TRANSPARENT -u BERTH_PROXY_PROTOCOL -u BERTH_E2E_IN_NETNS "$@" \
        "$DOCKERD" --config-file "$ROOT/daemon.json" \
        --data-root "$ROOT/data" --exec-root "$ROOT/exec" \
        --pidfile "$ROOT/dockerd.pid" -H "$DOCKER_HOST" \
        --containerd-namespace "berth-e2e-$$" \
        --containerd-plugins-namespace "berth-e2e-$$-plugins" \
        --bridge "$BR" "${DOCKERD_NETFLAGS[@]}" \
        --userland-proxy=true --userland-proxy-path="$proxy" \
        >>"$ROOT/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    wait_until 60 dockerd_answers_or_exited
    if ! dockerd_answers; then
        exited "$DOCKERD_PID" && { echo "FAIL: dockerd ($proxy) exited"; exit 1; }
        echo "FAIL: dockerd ($proxy) did not answer /_ping within 60 s"
        exit 1
    fi
}
dockerd_answers() { curl -sf --max-time 2 --unix-socket "$ROOT/docker.sock" http://d/_ping >/dev/null 2>&1; }
dockerd_answers_or_exited() { dockerd_answers || exited "$DOCKERD_PID"; }

# exited PID: gone, or a zombie (our child, reaped by a wait).
exited() { [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }

# stop_dockerd: removes every container, stops dockerd (TERM, KILL after
# 20 s), reaps it and kills what it left; DOCKERD_PID empty after.
stop_dockerd() {
    [ -n "$DOCKERD_PID" ] || return 0
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
        local ids
        ids=$(timeout 30 docker ps -aq 2>/dev/null)
        # shellcheck disable=SC2086 # one id a word
        [ -n "$ids" ] && timeout 60 docker rm -f $ids >/dev/null 2>&1
        kill -TERM "$DOCKERD_PID"
        for _ in $(seq 1 100); do
            exited "$DOCKERD_PID" && break
            sleep 0.2
        done
        kill -KILL "$DOCKERD_PID" 2>/dev/null
    fi
    wait "$DOCKERD_PID" 2>/dev/null
    DOCKERD_PID=
    kill_leftovers
}

# cleanup (the EXIT trap of make_test_root): stops dockerd, runs the
# script's own_cleanup when it defines one, removes the bridge, the mounts
# under ROOT and ROOT itself, shows the end of dockerd.log when the test
# failed, and exits with the script's status. The namespaces of
# enter_test_namespaces, with their /run and sysfs, end with the process.
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    stop_dockerd
    kill_leftovers
    declare -F own_cleanup >/dev/null && own_cleanup
    ip link del "$BR" 2>/dev/null
    # Deepest first.
    awk -v r="$ROOT" 'index($2, r) == 1 {print $2}' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null; done
    if [ "$rc" -ne 0 ] && [ -f "$ROOT/dockerd.log" ]; then
        echo "--- last lines of dockerd.log:"
        tail -n 40 "$ROOT/dockerd.log"
    fi
    rm -rf "$ROOT"
    exit "$rc"
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

# stage_image APPLET...: IMG=ROOT/img, an image tree with the static
# busybox as bin/busybox, each APPLET a link to it, and the static udp_echo
# as bin/udp_echo when there is one (HAVE_UDP 1, else 0). Add files under
# IMG, then import_image.
stage_image() {
    IMG=$ROOT/img
    mkdir -p "$IMG/bin"
    cp "$BUSYBOX" "$IMG/bin/busybox" || { echo "FAIL: copy $BUSYBOX into the image"; exit 1; }
    local a
    for a in "$@"; do ln -s busybox "$IMG/bin/$a"; done
    HAVE_UDP=0
    if is_static "$UDP_ECHO_STATIC"; then
        cp "$UDP_ECHO_STATIC" "$IMG/bin/udp_echo" && HAVE_UDP=1
    fi
}

# import_image: IMG as the image IMAGE in our dockerd (exits 1 if not).
import_image() {
    tar -C "$IMG" -c . | docker import - "$IMAGE" >/dev/null || { echo "FAIL: docker import"; exit 1; }
}
