#!/usr/bin/env bash
# Side-by-side benchmarks of our agent and dnsmasq configured exactly as Neutron configures it
# (throughput with perfdhcp and dhcp-loadgen, CPU per DORA, event -> servable latency,
# restart -> serving at 200 networks, footprint at 200 / 1,000 / 10,000 networks).
#
# Run as root on a Debian 12 machine: installs what it needs (dnsmasq-base, kea-admin for
# perfdhcp, python3), builds the release binaries, runs scripts/bench/bench.py, prints one table
# per section with both servers and the ratio, and rewrites BENCHMARKS.md (raw numbers in
# target/bench/results.json). Takes about 10 minutes; everything it creates (namespaces, veth
# pairs, bridges with private 10.x addresses, processes) is removed again.
#
#   scripts/bench-dnsmasq.sh                      # everything, rewrites BENCHMARKS.md
#   scripts/bench-dnsmasq.sh --only throughput    # one section (no BENCHMARKS.md update)
#   scripts/bench-dnsmasq.sh --step-secs 3 --trials 50
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "bench-dnsmasq.sh: run as root (network namespaces, veth pairs, bridges)" >&2
    exit 1
fi
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin"

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have dnsmasq || need+=(dnsmasq-base)
have perfdhcp || need+=(kea-admin)
have python3 || need+=(python3)
have ip || need+=(iproute2)
if [ "${#need[@]}" -gt 0 ]; then
    echo "bench-dnsmasq.sh: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo build --release --quiet \
    --features tools --bin neutron-dhcp-agent --bin dhcp-loadgen --bin render-dnsmasq --bin cache-footprint --bin dhcp-floor

exec python3 scripts/bench/bench.py "$@"
