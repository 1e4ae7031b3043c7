#!/usr/bin/env bash
# Creates (idempotently) the Python virtualenv that the oslo.messaging interop peer
# (tests/peer/neutron_peer.py, tests/peer/selftest.py) runs in, and prints the venv's
# python on the last line of stdout (progress goes to stderr), so callers can do
#
#     PY=$(scripts/py-venv.sh) && "$PY" tests/peer/selftest.py
#
#   NDRS_VENV    venv path            (default /var/tmp/ndrs-venv)
#   NDRS_PYTHON  interpreter to use   (default python3; needs >= 3.10 for oslo.messaging 18)
#
# Fast path: when $NDRS_VENV/.ndrs-stamp already holds exactly the pins below (and the same
# interpreter version) nothing is installed and the script returns in a few milliseconds.
# Otherwise the venv is rebuilt from scratch (scripts/lib/venv.sh, shared with
# scripts/py-venv-neutron.sh).
set -euo pipefail
# shellcheck source=lib/venv.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/venv.sh"
VENV_TOOL=py-venv.sh

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

venv_python_version
case "$PYVER" in
    2.* | 3.[0-9]) die "$PY is Python $PYVER; oslo.messaging 18 needs >= 3.10 (set NDRS_PYTHON)" ;;
esac

oslo_imports() {
    "$VENV/bin/python" -W ignore -c 'import oslo_messaging, kombu, amqp' \
        || die "oslo_messaging does not import in $VENV"
}

pinned_venv oslo.messaging bin/python "$VENV/bin/python" oslo_imports
