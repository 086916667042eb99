#!/usr/bin/env bash
# The main job: provision the host (idempotent), then run headless ComfyUI with this pack on the
# shipped API workflows. Options (see tools/main_job.py, or --help):
#   --checkpoint NAME_OR_PATH   default: the embedded default model (random weights, SD1.5 layout)
#   --workflows DIR             default: workflows/api
#   --output DIR                default: out/main_job
# The host is .host/ComfyUI (0.3.75) with .venv, or $COMFYUI_PATH with its own venv (scripts/host_env.sh).
# Exit status 0 only when every workflow ran and wrote its images.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/host_env.sh"

# The provisioner logs to stderr; it sets up the same host and venv that host_env.sh named.
"$hn_root/scripts/provision_host.sh" >/dev/null

# PYTHONPATH, not cd: relative paths in the arguments keep meaning what the caller meant.
export PYTHONPATH="$hn_root${PYTHONPATH:+:$PYTHONPATH}"
exec "$hn_venv/bin/python" -m tools.main_job --comfyui "$comfy_root" "$@"
