#!/usr/bin/env bash
# Everything CI checks, on a fresh Debian 12 machine, as root:
#   missing packages (scripts/install-deps.sh), cargo fmt --check, cargo clippy -D warnings,
#   cargo test (all tests, including the end-to-end ones that need root: namespaces, veth,
#   bridges and real DHCP clients).
# Exits non-zero on the first failing step.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: run as root; the end-to-end tests create network namespaces," \
        "veth pairs and bridges (they are not skipped without root, they fail)" >&2
    exit 1
fi

bash scripts/install-deps.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --quiet --all-targets -- -D warnings

step "cargo test"
cargo test --no-fail-fast
