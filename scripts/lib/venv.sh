# shellcheck shell=bash
# The one way the tests' pinned Python virtualenvs are built, sourced by scripts/py-venv.sh (the
# oslo.messaging peer) and scripts/py-venv-neutron.sh (the real Neutron agents); not run itself.
#
# A venv is fresh when its stamp file ($VENV/.ndrs-stamp) holds exactly the interpreter's
# version and the pins; then nothing is installed and the caller returns in a few milliseconds.
# Otherwise it is rebuilt from scratch: `python -m venv` (installing python3-venv with apt-get
# first, as root, when the interpreter lacks the venv/ensurepip module), then the first pin
# installed with every pin as a constraint. Concurrent callers are serialised with flock on
# $VENV.lock.
#
# The caller sets VENV_TOOL (its name, for messages), VENV, PY and PINS (one `name==version` a
# line, the package to install first), calls `venv_python_version`, then `pinned_venv`.

log() { echo "$VENV_TOOL: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# Sets PYVER to $PY's major.minor version; dies when $PY is missing or does not run.
venv_python_version() {
    command -v "$PY" >/dev/null 2>&1 || die "no '$PY' on PATH (set NDRS_PYTHON)"
    PYVER="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
        || die "'$PY' does not run"
}

# pinned_venv WHAT MARKER OUT [VERIFY]
#   Makes $VENV fresh (see above) and prints OUT on stdout (progress goes to stderr). WHAT names
#   the pins in the progress line; MARKER is a file (relative to $VENV) that only a complete
#   install has; VERIFY, a command run after the install, must succeed before the stamp is
#   written.
pinned_venv() {
    local what=$1 marker=$2 out=$3 verify=${4:-}
    local want="python=$PYVER
$PINS"
    local stamp="$VENV/.ndrs-stamp"
    fresh() { [ -x "$VENV/$marker" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }

    if fresh; then
        echo "$out"
        return 0
    fi
    mkdir -p "$(dirname "$VENV")"
    exec 9>"$VENV.lock"
    flock 9
    if fresh; then # another caller built it while we waited for the lock
        echo "$out"
        return 0
    fi

    log "building $VENV (Python $PYVER, $what pinned)"
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

    local constraints="$VENV/constraints.txt"
    printf '%s\n' "$PINS" >"$constraints"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        -c "$constraints" "$(printf '%s\n' "$PINS" | head -n1)" >&2 \
        || die "pip install failed (see above); venv left at $VENV"
    if [ -n "$verify" ]; then
        "$verify"
    fi

    printf '%s' "$want" >"$stamp"
    log "ready: $VENV"
    echo "$out"
}
