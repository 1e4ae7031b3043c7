#!/usr/bin/env bash
# Everything CI checks, on a fresh Debian 12 machine, as root:
#   missing packages (scripts/install-deps.sh), cargo fmt --check, cargo clippy -D warnings,
#   cargo test (all tests, including the end-to-end ones that need root: namespaces, veth,
#   bridges and real DHCP clients).
# Exits non-zero on the first failing step, and when any test suite skipped its root tests (as
# plain `cargo test` does for a non-root user: tests/common/root.rs); here nothing may skip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: run as root; the end-to-end tests create network namespaces," \
        "veth pairs and bridges (without root they would only be skipped)" >&2
    exit 1
fi

bash scripts/install-deps.sh
# Test-only dependencies: Open vSwitch for tests/device_ovs.rs (installed without starting the
# system service) and a venv with the real oslo.messaging for the RPC tests' neutron-server peer.
bash scripts/ovs-test-env.sh install
bash scripts/py-venv.sh >/dev/null
# The real Neutron agents (metadata agent, Python DHCP agent) for tests/metadata_e2e.rs and
# tests/migration.rs, in a venv of their own.
bash scripts/py-venv-neutron.sh >/dev/null
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin"

step() { printf '\n==> %s\n' "$*"; }

# The RPC tests talk to the real RabbitMQ on 127.0.0.1:5672; start it if it is not running.
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    step "starting rabbitmq-server"
    rabbitmq-server -detached
    for _ in $(seq 60); do
        (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break
        sleep 1
    done
fi

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --quiet --all-targets -- -D warnings

step "cargo test"
# Every suite that skips its root tests appends its name here (NDRS_SKIPPED_FILE, read by
# tests/common/root.rs); as root none may, so a name here fails the run.
skipped=$(mktemp)
trap 'rm -f "$skipped"' EXIT
NDRS_SKIPPED_FILE=$skipped cargo test --no-fail-fast
if [ -s "$skipped" ]; then
    echo "scripts/test.sh: these suites skipped their root tests although we run as root:" >&2
    sed 's/^/    /' "$skipped" >&2
    exit 1
fi
