#!/usr/bin/env bash
# Bootstrap and launch orglife from a fresh clone: Python 3.11 virtual env, pinned dependencies
# (reinstalled only when requirements.lock changes, so repeat runs start at once), then the CLI.
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
cd "$ROOT"

VENV=.venv
STAMP="$VENV/.orglife-lock-sha256"

say() { printf 'orglife: %s\n' "$*" >&2; }

is_py311() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1; }

find_python() {
    local candidate
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && is_py311 "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done
    say "Python 3.11 is required (neither python3.11 nor python3 is 3.11)."
    say "Install it (Debian/Ubuntu: apt-get install python3.11 python3.11-venv; or pyenv install 3.11), then run this again."
    exit 3
}

lock_sha() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum requirements.lock | cut -d' ' -f1
    else
        "$VENV/bin/python" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' requirements.lock
    fi
}

# A venv that no longer runs (moved, its Python removed) or is not 3.11 is rebuilt.
if [ -d "$VENV" ] && ! is_py311 "$VENV/bin/python"; then
    say "rebuilding $VENV (its Python is missing or not 3.11)"
    rm -rf "$VENV"
fi
if [ ! -d "$VENV" ]; then
    PYTHON="$(find_python)"
    say "creating $VENV with $PYTHON"
    if ! "$PYTHON" -m venv "$VENV"; then
        rm -rf "$VENV"
        say "could not create the virtual env; on Debian/Ubuntu install python3.11-venv first."
        exit 3
    fi
fi

WANT="$(lock_sha)"
HAVE="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$WANT" != "$HAVE" ]; then
    say "installing pinned dependencies (requirements.lock changed or first run)..."
    PIP=("$VENV/bin/python" -m pip -qq --disable-pip-version-check --no-input)
    "${PIP[@]}" install -r requirements.lock
    "${PIP[@]}" install --no-deps -e .
    echo "$WANT" > "$STAMP"
    say "dependencies ready"
fi

# `./orglife test` also runs the dashboard's browser tests (tests/browser) in Debian's chromium
# with a CJK font; installed here when missing, with apt-get as RabbitMQ is.
if [ "${1:-}" = "test" ] && { [ ! -x /usr/bin/chromium ] ||
        [ ! -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]; }; then
    "$VENV/bin/python" -c '
import sys
from orglife.broker import BootstrapError, apt_install
try:
    apt_install(["chromium", "fonts-wqy-microhei"], "chromium (for the browser tests)")
except BootstrapError as exc:
    sys.exit(f"orglife: {exc}")
' || exit 3
fi

exec "$VENV/bin/python" -m orglife "$@"
