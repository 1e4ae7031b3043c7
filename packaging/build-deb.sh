#!/usr/bin/env bash
# Builds the Debian package of neutron-dhcp-rs with dpkg-deb (Debian's own tool; no extra
# build dependency): /usr/bin/neutron-dhcp-agent, its systemd unit, the sample configs and the
# README. The operator's /etc/neutron files are not touched: the agent reads them as they are.
#
#   packaging/build-deb.sh [--binary PATH] [--out DIR]
#
# Without --binary it builds the release binary first. Prints the path of the .deb.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
binary= out=$top/target/debian
while [ $# -gt 0 ]; do
    case $1 in
    --binary) binary=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "build-deb.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
if [ -z "$binary" ]; then
    (cd "$top" && cargo build --release --quiet --bin neutron-dhcp-agent)
    binary=$top/target/release/neutron-dhcp-agent
fi
[ -x "$binary" ] || { echo "build-deb.sh: $binary is not an executable" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$top/Cargo.toml" | head -n1)
arch=$(dpkg --print-architecture)
pkg=neutron-dhcp-rs
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

install -D -m 0755 "$binary" "$stage/usr/bin/neutron-dhcp-agent"
# Debian ships binaries stripped (debug info belongs in a -dbgsym package).
strip --strip-unneeded "$stage/usr/bin/neutron-dhcp-agent"
install -D -m 0644 "$top/packaging/neutron-dhcp-agent.service" \
    "$stage/lib/systemd/system/neutron-dhcp-agent.service"
install -D -m 0644 "$top/packaging/neutron-dhcp-agent.logrotate" \
    "$stage/etc/logrotate.d/neutron-dhcp-agent"
doc=$stage/usr/share/doc/$pkg
install -D -m 0644 "$top/README.md" "$doc/README.md"
install -D -m 0644 "$top/packaging/debian/copyright" "$doc/copyright"
for f in neutron.conf dhcp_agent.ini networks.json; do
    install -D -m 0644 "$top/config/$f" "$doc/examples/$f"
done

mkdir -p "$stage/DEBIAN"
installed_kb=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$installed_kb/" \
    "$top/packaging/debian/control" >"$stage/DEBIAN/control"
install -m 0644 "$top/packaging/debian/conffiles" "$stage/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "$top/packaging/debian/$script" "$stage/DEBIAN/$script"
done

mkdir -p "$out"
deb=$out/${pkg}_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zgzip --build "$stage" "$deb" >/dev/null
echo "$deb"
