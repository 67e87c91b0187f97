#!/usr/bin/env bash
# Sets up a virtual environment with the project and runs `ekinerja demo`: a store on SQLite,
# two simulated ZKTeco terminals (one TCP, one UDP) and the gateway, all on this machine.
# Extra arguments go to the demo, e.g. scripts/demo.sh --seconds 60
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if ! "$python" -c "import ensurepip, venv" 2>/dev/null; then
  echo "Python's venv module is missing: install it (Debian/Ubuntu: sudo apt-get install python3-venv) and run again." >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/ekinerja demo "$@"
