#!/usr/bin/env bash
# The DNS service beside dnsmasq (Neutron's command line), in one run: queries/s and CPU per
# query for local names and for forwarded names, with dnsperf in a client namespace
# (scripts/bench/dns.py). About 30 s; removes everything it creates (namespaces, veth pairs, a
# bridge, private 10.88.0.0/24 addresses, processes). Raw numbers in target/bench/dns.json.
#
#   scripts/bench-dns.sh [--ports 200] [--secs 6]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "bench-dns.sh: run as root (network namespaces, veth pairs, bridges)" >&2
    exit 1
fi
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin"
scripts/install-deps.sh
cargo build --release --quiet --features tools --bin neutron-dhcp-agent --bin render-dnsmasq --bin dns-footprint
exec python3 scripts/bench/dns.py "$@"
