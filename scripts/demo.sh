#!/usr/bin/env bash
# Demo on a fresh Debian 12 machine, as root:
#   1. installs missing packages (scripts/install-deps.sh) and builds the agent (release);
#   2. starts neutron-dhcp-agent stand-alone on config/neutron.conf + config/dhcp_agent.ini
#      serving config/networks.json: one namespace qdhcp-<network> per network, its DHCP port's
#      tap end on the Linux bridge brq<network_id[:11]>;
#   3. puts one client namespace per VM port on that bridge, with the port's MAC, and runs a
#      real DHCP client (ISC dhclient) in each, plus one client with a MAC that is no port;
#   4. prints what every client received, stops the agent (SIGTERM) and removes everything
#      it made (also on failure or Ctrl-C).
# The client hook (scripts/dhcp-hook.sh) only prints; nothing on the host is reconfigured.
# Exit status: 0 when every client got exactly its port's address and the stranger got nothing.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/demo.sh: run as root (it creates network namespaces, veth pairs, bridges)" >&2
    exit 1
fi

bash scripts/install-deps.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin"

NETWORKS=config/networks.json
AGENT_INI=config/dhcp_agent.ini
NEUTRON_CONF=config/neutron.conf
HOOK=$top/scripts/dhcp-hook.sh
STRANGER_MAC=fa:16:3e:de:ad:01

echo "==> cargo build --release"
cargo build --release --quiet
agent_bin=$top/target/release/neutron-dhcp-agent

work=$(mktemp -d /tmp/ndrs-demo.XXXXXX)
tag=$(printf '%04x' $((RANDOM)))
agent_pid=
client_ns=()
client_links=()
made_bridges=()
network_ids=()

cleanup() {
    set +e
    if [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; then
        kill -TERM "$agent_pid"
        for _ in $(seq 50); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$agent_pid" 2>/dev/null
        wait "$agent_pid" 2>/dev/null
    fi
    local ns pid link id br
    for ns in "${client_ns[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    for link in "${client_links[@]}"; do
        [ -e "/sys/class/net/$link" ] && ip link del "$link" 2>/dev/null
    done
    # Only if the agent could not clean up after itself.
    for id in "${network_ids[@]}"; do
        [ -e "/run/netns/qdhcp-$id" ] && ip netns del "qdhcp-$id" 2>/dev/null
    done
    for br in "${made_bridges[@]}"; do
        [ -e "/sys/class/net/$br" ] && ip link del "$br" 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

strip_ansi() { sed 's/\x1b\[[0-9;]*m//g'; }

# [veth] bridge from dhcp_agent.ini (default brq{network_id}).
bridge_template=$(awk -F= '
    /^[[:space:]]*\[/ { sec = $0; gsub(/[][[:space:]]/, "", sec); next }
    sec == "veth" && $1 ~ /^[[:space:]]*bridge[[:space:]]*$/ { v = $2; gsub(/^[[:space:]]+|[[:space:]]+$/, "", v); t = v }
    END { print (t == "" ? "brq{network_id}" : t) }' "$AGENT_INI")
bridge_for() { local id=$1; echo "${bridge_template//\{network_id\}/${id:0:11}}"; }

mapfile -t network_ids < <(jq -r '.[].id' "$NETWORKS")
for id in "${network_ids[@]}"; do
    br=$(bridge_for "$id")
    [ -e "/sys/class/net/$br" ] || made_bridges+=("$br")
done

# --- start the agent -----------------------------------------------------------------------
mkdir -p "$work/state"
# The status endpoint (metrics, networks, explain) on a loopback port of its own.
status_port=$((20000 + RANDOM % 20000))
printf '[DEFAULT]\nstate_path = %s\n[agent]\nstatus_listen = 127.0.0.1:%s\n' \
    "$work/state" "$status_port" >"$work/demo.ini"
echo "==> starting neutron-dhcp-agent on $NETWORKS"
NO_COLOR=1 "$agent_bin" --teardown-on-exit \
    --config-file "$NEUTRON_CONF" --config-file "$AGENT_INI" --config-file "$work/demo.ini" \
    --networks-file "$NETWORKS" 2>"$work/agent.log" &
agent_pid=$!

print_agent_log() {
    echo "--- agent log ---"
    strip_ansi <"$work/agent.log" | tail -n 60
    echo "--- end of agent log ---"
}

for id in "${network_ids[@]}"; do
    for i in $(seq 150); do
        if strip_ansi <"$work/agent.log" | grep -F "serving network" | grep -qF "$id"; then
            break
        fi
        if ! kill -0 "$agent_pid" 2>/dev/null; then
            echo "the agent exited before serving network $id" >&2
            print_agent_log >&2
            exit 1
        fi
        if [ "$i" -eq 150 ]; then
            echo "the agent did not serve network $id within 30 s" >&2
            print_agent_log >&2
            exit 1
        fi
        sleep 0.2
    done
    echo "    serving network $id in qdhcp-$id, tap on $(bridge_for "$id")"
done

# --- clients ---------------------------------------------------------------------------------
cat >"$work/dhclient.conf" <<'EOF'
option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;
timeout 10;
retry 60;
initial-interval 1;
request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, host-name,
        interface-mtu, rfc3442-classless-static-routes;
EOF

# rows: network id, MAC, expected IP ("-" = expect nothing)
rows=()
while IFS=$'\t' read -r id mac ipaddr; do
    rows+=("$id"$'\t'"$mac"$'\t'"$ipaddr")
done < <(jq -r '.[] | .id as $n | .ports[] | select(.device_owner != "network:dhcp")
                | [$n, .mac_address, .fixed_ips[0].ip_address] | @tsv' "$NETWORKS")
rows+=("${network_ids[0]}"$'\t'"$STRANGER_MAC"$'\t'"-")

echo "==> running dhclient in ${#rows[@]} client namespaces"
pids=()
for k in "${!rows[@]}"; do
    IFS=$'\t' read -r id mac _ <<<"${rows[$k]}"
    ns="ndrs-demo-$tag-$k"
    inner="dm$tag${k}c"
    outer="dm$tag${k}r"
    ip netns add "$ns"
    client_ns+=("$ns")
    ip link add "$outer" type veth peer name "$inner" netns "$ns"
    client_links+=("$outer")
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "$inner" address "$mac" up
    ip link set "$outer" master "$(bridge_for "$id")" up
    cat >"$work/hook-$k.sh" <<EOF
#!/bin/sh
DHCP_HOOK_CLIENT=dhclient DHCP_HOOK_OUT='$work/lease-$k' exec /bin/sh '$HOOK' "\$@"
EOF
    chmod +x "$work/hook-$k.sh"
    # dhclient daemonizes once bound; the namespace cleanup kills it.
    timeout 30 ip netns exec "$ns" dhclient -4 -1 -v -cf "$work/dhclient.conf" \
        -sf "$work/hook-$k.sh" -lf "$work/dhclient-$k.leases" -pf "$work/dhclient-$k.pid" \
        "$inner" >"$work/dhclient-$k.log" 2>&1 &
    pids+=("$!")
done
for pid in "${pids[@]}"; do wait "$pid" || true; done
for ns in "${client_ns[@]}"; do
    for pid in $(ip netns pids "$ns"); do kill -KILL "$pid" 2>/dev/null || true; done
done

# --- results ---------------------------------------------------------------------------------
mask_to_prefix() {
    local IFS=. n=0 o
    # shellcheck disable=SC2086 # split on dots
    for o in $1; do
        while [ "$o" -gt 0 ]; do n=$((n + (o & 1))); o=$((o >> 1)); done
    done
    echo "$n"
}

# Prints key=value pairs of the last BOUND record of a hook output file.
last_bound() {
    [ -f "$1" ] || return 0
    awk '/^DHCP-HOOK-BEGIN$/ { rec = ""; next }
         /^DHCP-HOOK-END$/   { if (rec ~ /\nreason=(BOUND|REBOOT|RENEW|REBIND)\n/) last = rec; next }
         { rec = rec "\n" $0 }
         END { printf "%s\n", last }' "$1"
}

fmt='%-8s %-18s %-16s %-11s %-22s %-5s %-16s %-15s %-6s %s\n'
echo
# shellcheck disable=SC2059
printf "$fmt" NETWORK MAC ADDRESS ROUTER DNS MTU HOSTNAME DOMAIN RESULT "ROUTES (option 121)"
failures=0
for k in "${!rows[@]}"; do
    IFS=$'\t' read -r id mac want <<<"${rows[$k]}"
    ip='' mask='' router='' dns='' mtu='' hostname='' domain='' routes=''
    while IFS='=' read -r key value; do
        case "$key" in
            ip) ip=$value ;; mask) mask=$value ;; router) router=$value ;; dns) dns=$value ;;
            mtu) mtu=$value ;; hostname) hostname=$value ;; domain) domain=$value ;;
            routes) routes=$value ;;
        esac
    done < <(last_bound "$work/lease-$k")
    if [ "$want" = "-" ]; then
        if [ -z "$ip" ]; then result=ok; else result=WRONG; fi
        [ -n "$ip" ] || ip="(no answer)"
        mac="$mac*"
    else
        if [ "$ip" = "$want" ]; then result=ok; else result=WRONG; fi
        [ -n "$ip" ] || ip="(no lease)"
    fi
    [ "$result" = ok ] || failures=$((failures + 1))
    [ -z "$mask" ] || ip="$ip/$(mask_to_prefix "$mask")"
    pretty_routes=$(for r in $routes; do printf '%s via %s, ' "${r%,*}" "${r#*,}"; done)
    pretty_routes=${pretty_routes%, }
    # shellcheck disable=SC2059
    printf "$fmt" "${id:0:8}" "$mac" "$ip" "${router:--}" "${dns:--}" "${mtu:--}" \
        "${hostname:--}" "${domain:--}" "$result" "${pretty_routes:--}"
done
echo "(* $STRANGER_MAC is no port of any network: a static-only server must not answer it)"
echo "Both networks use 10.90.0.0/24; each client got its own network's gateway, DNS and MTU."

# --- ask the agent ---------------------------------------------------------------------------
# The same configuration files find the running agent's status endpoint.
ask() { "$agent_bin" "$@" --config-file "$NEUTRON_CONF" --config-file "$AGENT_INI" \
    --config-file "$work/demo.ini"; }
IFS=$'\t' read -r first_net first_mac _ <<<"${rows[0]}"
echo
echo "==> neutron-dhcp-agent networks"
ask networks
echo
echo "==> neutron-dhcp-agent explain --network ${first_net} --mac ${first_mac}"
ask explain --network "$first_net" --mac "$first_mac"
echo
echo "==> neutron-dhcp-agent explain --network ${network_ids[0]} --mac ${STRANGER_MAC}"
ask explain --network "${network_ids[0]}" --mac "$STRANGER_MAC"

# --- stop ------------------------------------------------------------------------------------
echo
echo "==> stopping the agent (SIGTERM)"
kill -TERM "$agent_pid"
status=0
wait "$agent_pid" || status=$?
agent_pid=
left=()
for id in "${network_ids[@]}"; do
    [ ! -e "/run/netns/qdhcp-$id" ] || left+=("qdhcp-$id")
done
echo "    agent exited with status $status; namespaces left behind: ${left[*]:-none}"

if [ "$failures" -gt 0 ] || [ "$status" -ne 0 ] || [ "${#left[@]}" -gt 0 ]; then
    print_agent_log
    for k in "${!rows[@]}"; do
        echo "--- dhclient $k ---"
        tail -n 8 "$work/dhclient-$k.log"
    done
    echo "demo: FAILED ($failures unexpected client results)" >&2
    exit 1
fi
echo "demo: all ${#rows[@]} clients got what their port defines."
