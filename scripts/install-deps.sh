#!/usr/bin/env bash
# Installs what scripts/test.sh and scripts/demo.sh need on a fresh Debian 12 machine, as
# root. Idempotent: installs only what is missing; prints nothing when all is there.
#
#   dhclient (isc-dhcp-client), udhcpc, dhcpcd (dhcpcd-base)  real DHCP clients for the tests
#   ip (iproute2)                                             namespaces, veth pairs, bridges
#   jq                                                        demo.sh reads config/networks.json
#   dnsmasq (dnsmasq-base)                                    the oracle of tests/differential.rs
#   dig (bind9-dnsutils), dnsperf                           DNS clients of tests/dns*.rs and bench-dns.sh
#   haproxy, ethtool                                          the Python agent in tests/migration.rs
#   cc (gcc, libc6-dev)                                       the linker cargo needs
#   strip (binutils), setpriv (util-linux), systemd-analyze   tests/service.rs: the Debian
#     (systemd)                                               package, run as its unit says
#   curl                                                      tests/metadata*.rs (VM side)
#
# The Rust toolchain itself comes from rustup (rust-version in Cargo.toml is newer than
# Debian's rustc); this script only checks that it is there.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: run as root (apt-get install, network namespaces)" >&2
    exit 1
fi
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have dhclient || need+=(isc-dhcp-client)
have udhcpc || need+=(udhcpc)
have dhcpcd || need+=(dhcpcd-base)
have ip || need+=(iproute2)
have jq || need+=(jq)
have dnsmasq || need+=(dnsmasq-base)
have haproxy || need+=(haproxy)  # tests/migration.rs: the Python agent's metadata proxy
have ethtool || need+=(ethtool)  # tests/migration.rs: Neutron's OVS driver on a netdev bridge
have cc || need+=(gcc libc6-dev)
have strip || need+=(binutils)
have setpriv || need+=(util-linux)
have systemd-analyze || need+=(systemd)
have curl || need+=(curl) # tests/metadata*.rs: the VMs' HTTP client
have dig || need+=(bind9-dnsutils)
have dnsperf || need+=(dnsperf)

if [ "${#need[@]}" -gt 0 ]; then
    echo "install-deps.sh: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Rust: rustup's cargo is usually in ~/.cargo/bin, which a non-login shell may not have.
if ! have cargo && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
if ! have cargo; then
    echo "install-deps.sh: cargo not found; install the Rust toolchain with rustup" >&2
    exit 1
fi
for component in rustfmt clippy; do
    sub=${component/rustfmt/fmt}
    if ! cargo "$sub" --version >/dev/null 2>&1; then
        echo "install-deps.sh: adding rustup component $component"
        rustup component add "$component"
    fi
done
