#!/usr/bin/env bash
# The one test command: provision the host (idempotent), then run the whole suite in that host's
# virtual environment. The host is .host/ComfyUI (0.3.75) with .venv, or the ComfyUI tree at
# $COMFYUI_PATH with a venv of its own (scripts/host_env.sh). Extra arguments go to pytest, e.g.
#   scripts/test.sh -m "not slow" -x
#   COMFYUI_PATH=/path/to/ComfyUI scripts/test.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/host_env.sh"
cd "$hn_root"

"$hn_root/scripts/provision_host.sh" >/dev/null

# Bytecode goes beside the venv: the ComfyUI tree the tests import stays exactly as it was.
export PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-$hn_venv/pycache}"
exec "$hn_venv/bin/python" -m pytest "$@"
