#!/bin/sh
# berth's SCTP cases, run by /init in the QEMU guest that scripts/sctp-guest
# boots (busybox sh; berth, sctp_peer and the modules in the initramfs).
# Prints `PASS case N: ...` or `FAIL case N: ...` per case with its time,
# then `SCTP-GUEST: PASS` or `SCTP-GUEST: FAIL`, which the host looks for.
B=/bin/berth
P=/bin/sctp_peer
T=/tmp
passed=0
failed=0
why=""
bpids="" # berth processes of the case: stopped with SIGTERM, must exit 0
opids="" # echo servers of the case: killed

now() { read -r up _ </proc/uptime && echo "$up"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Waits up to 10 s for FILE to hold a line while PID runs.
wait_line() {
    i=0
    while [ $i -lt 100 ]; do
        grep -q . "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || { sleep 0.1; grep -q . "$1" 2>/dev/null; return; }
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# sctp_peer echo ARGS..., back once it says `listening`.
start_echo() {
    log=$T/echo.$cur.$2
    $P echo "$@" >"$log" 2>&1 &
    opids="$opids $!"
    wait_line "$log" $! && grep -q '^listening' "$log" && return 0
    why="echo $*: $(cat "$log")"
    return 1
}

# berth ARGS... in the background, stderr to $T/berth.$case.$n.
start_berth() {
    blog=$T/berth.$cur.$(echo "$bpids" | wc -w)
    "$@" 2>"$blog" &
    bpids="$bpids $!:$blog"
}

# Docker-proxy mode's ready signal: fd 3's file reads `0\n`.
want_ready() {
    pid=${bpids##* }
    pid=${pid%%:*}
    if ! wait_line "$1" "$pid" || [ "$(cat "$1")" != 0 ]; then
        why="fd 3 reads '$(cat "$1" 2>/dev/null)', want '0'; berth: $(tail -n 5 "$blog")"
        return 1
    fi
}

# The echo server's log LOG must say, within 10 s, that N associations ended
# with the peer's shutdown (what berth passes on when the client shuts down)
# and none otherwise.
want_ends() {
    i=0
    while [ "$(grep -c '^end ' "$1")" -lt "$2" ] && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    ends=$(grep -c '^end shutdown' "$1")
    other=$(grep '^end ' "$1" | grep -v '^end shutdown' | head -n 3)
    [ "$ends" = "$2" ] && [ -z "$other" ] && return 0
    why="the echo server saw $ends of $2 associations end with a shutdown; $other"
    return 1
}

client() {
    out=$($P client "$@" 2>&1)
    rc=$?
    echo "  client $*: $out"
    [ $rc = 0 ] && return 0
    why="client $*: $out"
    return 1
}

# Runs case N (function F) with its title; then stops its processes: each
# berth must exit 0 on SIGTERM (an ASan build reports leaks there).
run_case() {
    cur=$1
    t0=$(now)
    why=""
    "$3"
    ok=$?
    for b in $bpids; do
        kill -TERM "${b%%:*}" 2>/dev/null
        wait "${b%%:*}"
        rc=$?
        if [ $rc != 0 ] && [ $ok = 0 ]; then
            ok=1
            why="berth exited $rc on SIGTERM: $(tail -n 20 "${b#*:}")"
        fi
    done
    for p in $opids; do
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    bpids=""
    opids=""
    if [ $ok = 0 ]; then
        echo "PASS case $1: $2 ($(since "$t0") s)"
        passed=$((passed + 1))
    else
        echo "FAIL case $1: $2 ($(since "$t0") s): $why"
        failed=$((failed + 1))
    fi
}

# Exit status, output and fd 3 of a berth that must refuse to start.
want_refusal() {
    want=$1
    shift
    rm -f $T/fd3
    err=$(timeout 20 "$@" 2>&1 >/dev/null 3>$T/fd3)
    rc=$?
    echo "  $*: exit $rc: $err"
    [ $rc = 1 ] || { why="$*: exit $rc, want 1: $err"; return 1; }
    if [ "$(printf '%s\n' "$err" | wc -l)" != 1 ] || ! echo "$err" | grep -q "$want"; then
        why="$*: want one stderr line mentioning $want: $err"
        return 1
    fi
}

want_fd3_refusal() {
    [ "$(head -n 1 $T/fd3)" = 1 ] && [ -z "$(sed -n '3,$p' $T/fd3)" ] &&
        sed -n 2p $T/fd3 | grep -q "$1" && return 0
    why="fd 3 reads '$(cat $T/fd3)', want '1' and a line mentioning $1"
    return 1
}

dp_args() { echo "-proto sctp -host-ip 127.0.0.1 -host-port $1 -container-ip 127.0.0.1 -container-port $2"; }

case_no_sctp() {
    want_refusal SCTP $B --no-docker -p 127.0.0.1:3868:127.0.0.1:3869/sctp || return 1
    # shellcheck disable=SC2046
    want_refusal SCTP $B $(dp_args 3868 3869) || return 1
    want_fd3_refusal SCTP
}

case_modules() {
    while read -r m; do
        insmod "/lib/modules/$m.ko" || { why="insmod $m failed"; return 1; }
    done </lib/modules/modules.load
    ip link set lo up || { why="ip link set lo up failed"; return 1; }
    # The harness on its own: the peer's client straight to its echo.
    start_echo 127.0.0.1 3899 || return 1
    client 127.0.0.1 3899 --assocs 8 --unordered || return 1
    want_ends "$log" 8 || return 1
    start_echo 127.0.0.1 3898 --close-after 5 || return 1
    client 127.0.0.1 3898 --assocs 2 --expect-close-after 5
}

case_proxy_bind() {
    start_echo 127.0.0.1 3869 || return 1
    # shellcheck disable=SC2046
    start_berth $B $(dp_args 3868 3869) 3>$T/fd3.bind
    want_ready $T/fd3.bind || return 1
    client 127.0.0.1 3868 --assocs 8 --unordered || return 1
    want_ends "$log" 8
}

case_proxy_listen_fd() {
    start_echo 127.0.0.1 3869 || return 1
    # shellcheck disable=SC2046
    start_berth $P listen-exec 127.0.0.1 3870 -- $B $(dp_args 3870 3869) -use-listen-fd \
        3>$T/fd3.lfd
    want_ready $T/fd3.lfd || return 1
    client 127.0.0.1 3870 --assocs 8 --unordered || return 1
    want_ends "$log" 8 || return 1
    # A TCP socket handed over for -proto sctp is refused, naming SCTP in
    # any case.
    # shellcheck disable=SC2046
    want_refusal '[Ss][Cc][Tt][Pp]' $P listen-exec 127.0.0.1 3874 --tcp -- $B \
        $(dp_args 3874 3869) -use-listen-fd || return 1
    want_fd3_refusal '[Ss][Cc][Tt][Pp]'
}

case_native() {
    start_echo 127.0.0.1 3869 || return 1
    log4=$log
    start_echo ::1 3873 || return 1
    start_berth $B --no-docker -p 127.0.0.1:3871:127.0.0.1:3869/sctp \
        -p '[::1]:3872:[::1]:3873/sctp'
    client 127.0.0.1 3871 --assocs 32 --unordered --connect-wait 10 --timeout 120 || return 1
    client ::1 3872 --assocs 4 --unordered --connect-wait 10 || return 1
    # More streams than the kernel's default 10, each way: berth's listener
    # offers them to the client and asks the target for as many.
    client 127.0.0.1 3871 --assocs 2 --streams 30 --connect-wait 10 || return 1
    want_ends "$log4" 34 && want_ends "$log" 4
}

case_target_ends() {
    start_echo 127.0.0.1 3875 --close-after 5 || return 1
    start_berth $B --no-docker -p 127.0.0.1:3876:127.0.0.1:3875/sctp
    client 127.0.0.1 3876 --assocs 4 --expect-close-after 5 --connect-wait 10
}

case_target_down() {
    start_berth $B --no-docker -p 127.0.0.1:3877:127.0.0.1:3878/sctp
    client 127.0.0.1 3877 --assocs 2 --expect-end --connect-wait 10 --timeout 15
}

# SCTP has no half-close: once berth passed one side's end on, the other
# side's association ends with a SHUTDOWN-ACK that no read reports. The
# session must still close (both ways round), or its fds stay and a
# --max-conns port stops taking clients: with --max-conns 1 each next
# client is served only if the last session was closed.
case_sessions_close() {
    start_echo 127.0.0.1 3879 || return 1
    start_echo 127.0.0.1 3881 --close-after 3 || return 1
    start_berth $B --no-docker --log-level debug --max-conns 1 \
        -p 127.0.0.1:3880:127.0.0.1:3879/sctp -p 127.0.0.1:3882:127.0.0.1:3881/sctp
    for n in 1 2 3; do
        client 127.0.0.1 3880 --assocs 1 --rounds 5 --connect-wait 10 --timeout 10 || return 1
        client 127.0.0.1 3882 --assocs 1 --expect-close-after 3 --connect-wait 10 \
            --timeout 10 || return 1
    done
    i=0
    while [ "$(grep -c ': closed$' "$blog")" -lt 6 ] && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    closed=$(grep -c ': closed$' "$blog")
    [ "$closed" = 6 ] && return 0
    why="berth closed $closed of 6 sessions: $(grep -v 'debug: docker' "$blog" | tail -n 8)"
    return 1
}

echo "guest: $(uname -r), berth and sctp_peer from the host"
# No module autoloading: case 1 needs a kernel without SCTP until case 2.
echo >/proc/sys/kernel/modprobe
start=$(now)
run_case 1 "no SCTP in the kernel: berth says so (native, docker-proxy fd 3)" case_no_sctp
run_case 2 "modules loaded; the peer alone (echo, client, close-after)" case_modules
run_case 3 "docker-proxy mode binding itself, fd 3 ready, 8 associations" case_proxy_bind
run_case 4 "docker-proxy mode -use-listen-fd (SCTP taken, TCP refused)" case_proxy_listen_fd
run_case 5 "native mode, IPv4 (32 associations) and IPv6" case_native
run_case 6 "the target ends the association: the shutdown is passed on" case_target_ends
run_case 7 "target not listening: the client's association is ended" case_target_down
run_case 8 "sessions close after a clean end either way (--max-conns 1, 6 in a row)" case_sessions_close
echo "guest suite: $passed passed, $failed failed in $(since "$start") s"
if [ $failed = 0 ]; then
    echo "SCTP-GUEST: PASS"
else
    echo "SCTP-GUEST: FAIL"
fi
poweroff -f
