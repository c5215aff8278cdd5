#!/usr/bin/env bash
# Set up, then open the suite in JupyterLab on notebooks/ (start with 00_start_here.ipynb).
# Extra arguments go to jupyter lab, e.g. `bash scripts/lab.sh --no-browser --port 8888`.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=notebooks SKIP_BROWSER=1 bash scripts/setup.sh
.venv/bin/python -m ipykernel install --sys-prefix --name transport-demo \
    --display-name "Python (transport-demo)" >/dev/null
start=notebooks/00_start_here.ipynb
[ -f "$start" ] || start=notebooks
root=()
[ "$(id -u)" = 0 ] && root=(--allow-root)
exec .venv/bin/jupyter lab --ServerApp.root_dir=. "${root[@]}" "$start" "$@"
