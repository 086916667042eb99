#!/usr/bin/env bash
# GPU check: the DynamicVRAM/LoRA check, the CUDA-marked tests and the apply and training
# benchmarks (SD1.5 and SDXL shapes, fp16 and bf16), printed as one table (scripts/gpu_check.py).
#
#   COMFYUI_PATH=/path/to/ComfyUI bash scripts/gpu_check.sh [--wheels DIR] [gpu_check.py options]
#
# Offline: nothing is downloaded. It uses $PYTHON (default python3) as it is; --wheels DIR first
# installs the wheels in DIR (what ComfyUI needs beyond that Python: torchsde, comfy-aimdo, ...)
# into a temporary folder with pip --no-index and puts it on PYTHONPATH. Without CUDA it says so
# and exits 0. `--help` lists the other options (--shapes, --dtypes, --rounds, --out, ...).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python_bin="${PYTHON:-python3}"
wheels=""
pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) [ $# -ge 2 ] || { echo "gpu_check: --wheels needs a folder" >&2; exit 2; }
                  wheels="$2"; shift 2 ;;
        --wheels=*) wheels="${1#--wheels=}"; shift ;;
        *) pass+=("$1"); shift ;;
    esac
done

export PIP_NO_INDEX=1  # never reach for a package registry
if [ -n "$wheels" ]; then
    if ! compgen -G "$wheels/*.whl" >/dev/null; then
        echo "gpu_check: no wheels in $wheels" >&2
        exit 2
    fi
    site="${TMPDIR:-/tmp}/hn-gpu-check-site"
    "$python_bin" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
        --upgrade --target "$site" "$wheels"/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$python_bin" -c 'import torch' 2>/dev/null; then
    echo "gpu_check: $python_bin cannot import torch; set PYTHON to a Python with torch" >&2
    exit 2
fi
cd "$root"
exec "$python_bin" scripts/gpu_check.py ${pass[@]+"${pass[@]}"}
