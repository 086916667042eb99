# Which ComfyUI tree and which virtual environment the scripts use. Sourced (not run) by
# provision_host.sh, test.sh and run_main_job.sh, so they always agree. Sets:
#   hn_root      this repository
#   comfy_root   the ComfyUI tree: $COMFYUI_PATH (resolved), else .host/ComfyUI (0.3.75, pinned)
#   hn_venv      its virtual environment: .venv for the pinned host; for any other tree
#                .venv-comfyui-<its comfyui_version>-<first 8 hex of sha256 of its resolved path>,
#                so every tree gets its own requirements and two trees never share one venv
# A COMFYUI_PATH that is not a folder is an error (exit 2), not a silent fallback to the pinned host.

hn_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
hn_pinned_root="$hn_root/.host/ComfyUI"

if [ -n "${COMFYUI_PATH:-}" ]; then
    if ! comfy_root="$(cd "$COMFYUI_PATH" 2>/dev/null && pwd -P)"; then
        echo "COMFYUI_PATH=$COMFYUI_PATH is not a folder" >&2
        exit 2
    fi
    export COMFYUI_PATH="$comfy_root"  # absolute: the tests and servers run from other folders
else
    comfy_root="$hn_pinned_root"
fi

if [ "$comfy_root" = "$hn_pinned_root" ]; then
    hn_venv="$hn_root/.venv"
else
    hn_version="$(sed -n 's/^__version__ *= *["'\'']\([^"'\'']*\)["'\''].*/\1/p' "$comfy_root/comfyui_version.py" 2>/dev/null)"
    hn_path_hash="$(printf '%s' "$comfy_root" | sha256sum | cut -c1-8)"
    hn_venv="$hn_root/.venv-comfyui-${hn_version:-unknown}-$hn_path_hash"
fi
