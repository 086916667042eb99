#!/usr/bin/env bash
# The main job: provision the host (idempotent), then run headless ComfyUI with this pack on the
# shipped API workflows. Options (see tools/main_job.py, or --help):
#   --checkpoint NAME_OR_PATH   default: the embedded default model (random weights, SD1.5 layout)
#   --workflows DIR             default: workflows/api
#   --output DIR                default: out/main_job
# Exit status 0 only when every workflow ran and wrote its images.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The provisioner logs to stderr and prints the ComfyUI root (COMFYUI_PATH or .host/ComfyUI) last.
comfy_root="$("$root/scripts/provision_host.sh" | tail -n 1)"

# PYTHONPATH, not cd: relative paths in the arguments keep meaning what the caller meant.
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$root/.venv/bin/python" -m tools.main_job --comfyui "$comfy_root" "$@"
