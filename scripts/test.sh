#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script): set up, then pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k sse -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
