#!/usr/bin/env bash
# A private, throw-away Open vSwitch for the tests (userspace datapath: this kernel may have no
# openvswitch module). Everything lives in one directory: database, sockets, pid files, logs.
#
#   ovs-test-env.sh install
#       Installs Debian's openvswitch-switch if ovsdb-server/ovs-vswitchd are missing, without
#       starting the system service. Needs root.
#   ovs-test-env.sh start DIR [--bridge NAME] [--tcp-port PORT] [--owner PID]
#       Installs if needed, then starts ovsdb-server on a fresh database (from the packaged
#       vswitch.ovsschema) listening on unix:DIR/db.sock (and on tcp:127.0.0.1:PORT with
#       --tcp-port), ovs-vswitchd --disable-system, and creates bridge NAME (default br-int)
#       with datapath_type=netdev. With --owner, a watchdog stops the environment once process
#       PID is gone (also when it was killed). Prints, one per line:
#         OVSDB_UNIX=unix:DIR/db.sock
#         OVSDB_TCP=tcp:127.0.0.1:PORT        (only with --tcp-port)
#         BRIDGE=NAME
#   ovs-test-env.sh stop DIR
#       Stops both daemons (vswitchd with --cleanup, so its devices go too) and removes DIR.
#       Idempotent; only touches a DIR that `start` made.
#   ovs-test-env.sh vsctl DIR ARGS...
#       ovs-vsctl against the environment's database.
#
# OVS_RUNDIR, OVS_DBDIR, OVS_LOGDIR and OVS_SYSCONFDIR all point into DIR, so nothing is read
# from or written to /etc/openvswitch, /var/run/openvswitch or /var/log/openvswitch. The
# userspace datapath creates one device per bridge plus `ovs-netdev` in the current network
# namespace; a second userspace ovs-vswitchd in the same namespace would collide on
# `ovs-netdev`, so `start` refuses to run while another ovs-vswitchd is alive here, and removes
# a stale `ovs-netdev` that a dead one left.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

SELF="$(readlink -f "${BASH_SOURCE[0]}")"
MARKER=.ndrs-ovs-test-env
SCHEMA=/usr/share/openvswitch/vswitch.ovsschema

die() {
    echo "ovs-test-env.sh: $*" >&2
    exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

install_ovs() {
    if have ovsdb-server && have ovs-vswitchd && have ovs-vsctl && have ovsdb-tool && [ -f "$SCHEMA" ]; then
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "openvswitch-switch is not installed and we are not root to install it"
    echo "ovs-test-env.sh: installing openvswitch-switch" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Keep the package from starting the system-wide service: the tests run their own.
    local policy=/usr/sbin/policy-rc.d made_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    local rc=0
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends openvswitch-switch; } \
        >/dev/null || rc=$?
    [ -n "$made_policy" ] && rm -f "$policy"
    [ "$rc" -eq 0 ] || die "apt-get install openvswitch-switch failed ($rc)"
}

env_for() {
    export OVS_RUNDIR="$1" OVS_DBDIR="$1" OVS_LOGDIR="$1" OVS_SYSCONFDIR="$1"
}

# pid from DIR/NAME.pid, only if that process is still the one started for DIR.
live_pid() {
    local dir=$1 name=$2 pid
    pid=$(cat "$dir/$name.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/" || return 1
    echo "$pid"
}

# Whether process PID has exited (a zombie counts: detached daemons are reaped by init, which
# may take its time).
gone() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
    [ -z "$state" ] || [ "$state" = Z ]
}

stop_daemon() {
    local dir=$1 name=$2 pid i
    pid=$(live_pid "$dir" "$name") || return 0
    if [ "$name" = ovs-vswitchd ]; then
        timeout 5 ovs-appctl -t "$dir/$name.ctl" exit --cleanup >/dev/null 2>&1 || true
    else
        timeout 5 ovs-appctl -t "$dir/$name.ctl" exit >/dev/null 2>&1 || true
    fi
    for i in $(seq 50); do
        gone "$pid" && return 0
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 20); do
        gone "$pid" && return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# Whether any ovs-vswitchd process lives in this process's network namespace (only such a
# process can own the `ovs-netdev` device here).
vswitchd_in_this_netns() {
    local me pid
    me=$(readlink /proc/self/ns/net)
    for pid in $(pgrep -x ovs-vswitchd 2>/dev/null); do
        gone "$pid" && continue
        [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "$me" ] && return 0
    done
    return 1
}

stop_env() {
    local dir=$1
    [ -d "$dir" ] || return 0
    [ -e "$dir/$MARKER" ] || die "$dir was not made by ovs-test-env.sh start; not touching it"
    env_for "$dir"
    stop_daemon "$dir" ovs-vswitchd
    stop_daemon "$dir" ovsdb-server
    rm -rf "$dir"
}

start_env() {
    local dir=$1
    shift
    local bridge=br-int tcp_port= owner=
    while [ $# -gt 0 ]; do
        case $1 in
        --bridge) bridge=$2; shift 2 ;;
        --tcp-port) tcp_port=$2; shift 2 ;;
        --owner) owner=$2; shift 2 ;;
        *) die "unknown option $1" ;;
        esac
    done
    [ "$(id -u)" -eq 0 ] || die "start needs root (ovs-vswitchd creates network devices)"
    install_ovs
    if [ -e /sys/class/net/ovs-netdev ]; then
        if vswitchd_in_this_netns; then
            die "another userspace ovs-vswitchd runs in this network namespace (device ovs-netdev exists); stop it first (scripts/ovs-test-env.sh stop DIR)"
        fi
        # Left by an ovs-vswitchd that died without --cleanup: nothing owns it any more.
        echo "ovs-test-env.sh: removing stale device ovs-netdev (no ovs-vswitchd runs in this network namespace)" >&2
        ip link del ovs-netdev 2>/dev/null || [ ! -e /sys/class/net/ovs-netdev ] \
            || die "cannot remove the stale device ovs-netdev"
    fi
    [ ! -e "/sys/class/net/$bridge" ] || die "a device named $bridge already exists"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -n "$(ls -A "$dir")" ]; then
        die "$dir is not empty"
    fi
    touch "$dir/$MARKER"
    env_for "$dir"
    # Whatever fails from here on, leave nothing running.
    STARTING_DIR=$dir
    trap 'rc=$?; if [ $rc -ne 0 ]; then echo "ovs-test-env.sh: start failed; logs:" >&2; tail -n 20 "$STARTING_DIR"/*.log >&2 2>/dev/null || true; stop_env "$STARTING_DIR" || true; fi' EXIT

    ovsdb-tool create "$dir/conf.db" "$SCHEMA"
    local remotes=(--remote="punix:$dir/db.sock")
    [ -n "$tcp_port" ] && remotes+=(--remote="ptcp:$tcp_port:127.0.0.1")
    ovsdb-server "$dir/conf.db" "${remotes[@]}" \
        --pidfile="$dir/ovsdb-server.pid" --unixctl="$dir/ovsdb-server.ctl" \
        --log-file="$dir/ovsdb-server.log" --detach --no-chdir
    local db="unix:$dir/db.sock"
    ovs-vsctl --db="$db" --timeout=10 --no-wait init
    ovs-vswitchd "$db" --disable-system \
        --pidfile="$dir/ovs-vswitchd.pid" --unixctl="$dir/ovs-vswitchd.ctl" \
        --log-file="$dir/ovs-vswitchd.log" --detach --no-chdir
    # Without --no-wait, ovs-vsctl waits until ovs-vswitchd has created the bridge.
    ovs-vsctl --db="$db" --timeout=20 add-br "$bridge" -- set Bridge "$bridge" datapath_type=netdev
    if [ -n "$tcp_port" ]; then
        ovs-vsctl --db="tcp:127.0.0.1:$tcp_port" --timeout=10 br-exists "$bridge" ||
            die "ovsdb-server does not answer on tcp:127.0.0.1:$tcp_port"
    fi
    if [ -n "$owner" ]; then
        # Detached from the caller's stdio so it never holds a pipe of the test runner open.
        setsid bash -c 'while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 1; done
                        exec bash "$0" stop "$2"' "$SELF" "$owner" "$dir" \
            </dev/null >/dev/null 2>&1 &
    fi
    trap - EXIT
    echo "OVSDB_UNIX=$db"
    [ -n "$tcp_port" ] && echo "OVSDB_TCP=tcp:127.0.0.1:$tcp_port"
    echo "BRIDGE=$bridge"
}

cmd=${1:-}
case $cmd in
install) install_ovs ;;
start)
    [ $# -ge 2 ] || die "usage: $0 start DIR [--bridge NAME] [--tcp-port PORT] [--owner PID]"
    shift
    start_env "$@"
    ;;
stop)
    [ $# -eq 2 ] || die "usage: $0 stop DIR"
    stop_env "$2"
    ;;
vsctl)
    [ $# -ge 2 ] || die "usage: $0 vsctl DIR ARGS..."
    dir=$2
    shift 2
    exec ovs-vsctl --db="unix:$dir/db.sock" --timeout=10 "$@"
    ;;
*) die "usage: $0 install | start DIR [...] | stop DIR | vsctl DIR ARGS..." ;;
esac
