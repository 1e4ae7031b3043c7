#!/usr/bin/env bash
# Creates (idempotently) the Python virtualenv that the oslo.messaging interop peer
# (tests/peer/neutron_peer.py, tests/peer/selftest.py) and the real Python
# neutron-dhcp-agent (tests/migration.rs) run in, and prints the venv's
# python on the last line of stdout (progress goes to stderr), so callers can do
#
#     PY=$(scripts/py-venv.sh) && "$PY" tests/peer/selftest.py
#
#   NDRS_VENV    venv path            (default /var/tmp/ndrs-venv)
#   NDRS_PYTHON  interpreter to use   (default python3; needs >= 3.10 for oslo.messaging 18)
#
# Fast path: when $NDRS_VENV/.ndrs-stamp already holds exactly the pins below (and the same
# interpreter version) nothing is installed and the script returns in a few milliseconds.
# Otherwise the venv is rebuilt from scratch. If the interpreter lacks the venv/ensurepip
# module (Debian without python3-venv), the package is installed with apt-get (as root).
# Concurrent callers are serialised with flock on $NDRS_VENV.lock.
set -euo pipefail

VENV="${NDRS_VENV:-/var/tmp/ndrs-venv}"
PY="${NDRS_PYTHON:-python3}"

# Direct requirement plus every transitive dependency, pinned (pip freeze of a working
# Python 3.11 install, 2026). oslo.messaging 18.3.1 is the newest release; it requires
# Python >= 3.10. Change a pin here and the next run rebuilds the venv.
PINS="oslo.messaging==18.3.1
amqp==5.4.2
kombu==5.7.0
vine==5.1.0
oslo.config==10.7.0
oslo.context==6.5.0
oslo.log==8.3.2
oslo.utils==10.2.0
oslo.serialization==5.11.0
oslo.service==4.8.0
oslo.concurrency==7.6.1
oslo.middleware==8.2.0
oslo.metrics==0.17.0
oslo.i18n==6.9.0
futurist==3.5.0
stevedore==5.10.0
debtcollector==3.1.0
cachetools==8.0.2
WebOb==1.8.11
PyYAML==6.0.4
pbr==7.1.3
eventlet==0.41.3
greenlet==3.5.6
dnspython==2.9.2
bcrypt==5.0.0
certifi==2026.10.19.post1
charset-normalizer==3.5.3
fasteners==0.20
idna==3.20
iso8601==2.1.0
Jinja2==3.1.6
MarkupSafe==3.0.4
msgpack==1.2.4
netaddr==1.3.0
packaging==26.4
Paste==3.10.1
PasteDeploy==3.1.0
prometheus_client==0.26.0
psutil==7.2.2
pyparsing==3.3.3
python-dateutil==4.0.0
repoze-lru==0.8
requests==2.34.2
rfc3986==2.0.0
Routes==2.5.1
six==1.17.0
statsd==4.0.1
typing_extensions==4.16.0
tzdata==2026.6
urllib3==2.8.0
wrapt==2.5.2
yappi==1.7.6"

log() { echo "py-venv.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

command -v "$PY" >/dev/null 2>&1 || die "no '$PY' on PATH (set NDRS_PYTHON)"
PYVER="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
    || die "'$PY' does not run"
case "$PYVER" in
    2.* | 3.[0-9]) die "$PY is Python $PYVER; oslo.messaging 18 needs >= 3.10 (set NDRS_PYTHON)" ;;
esac

# The real Python DHCP agent for tests/migration.rs; pip resolves its own dependencies
# within the pins above.
NEUTRON="neutron==29.0.0"
WANT="python=$PYVER
$PINS
$NEUTRON"
STAMP="$VENV/.ndrs-stamp"

fresh() { [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; }

if fresh; then
    echo "$VENV/bin/python"
    exit 0
fi

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if fresh; then # another caller built it while we waited for the lock
    echo "$VENV/bin/python"
    exit 0
fi

log "building $VENV (Python $PYVER, oslo.messaging pinned)"
rm -rf "$VENV"
if ! "$PY" -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    [ "$(id -u)" -eq 0 ] || die "'$PY -m venv' failed and apt-get needs root: install python3-venv"
    log "'$PY -m venv' failed (no venv/ensurepip module); installing python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends python3-venv "python$PYVER-venv" >&2 \
        || apt-get install -y -qq --no-install-recommends python3-venv >&2
    "$PY" -m venv "$VENV" >&2 || die "'$PY -m venv $VENV' still fails"
fi

CONSTRAINTS="$VENV/constraints.txt"
printf '%s\n' "$PINS" >"$CONSTRAINTS"
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
    -c "$CONSTRAINTS" "$(printf '%s\n' "$PINS" | head -n1)" "$NEUTRON" >&2 \
    || die "pip install failed (see above); venv left at $VENV"
"$VENV/bin/python" -W ignore -c 'import oslo_messaging, kombu, amqp' \
    || die "oslo_messaging does not import in $VENV"

printf '%s' "$WANT" >"$STAMP"
log "ready: $VENV"
echo "$VENV/bin/python"
