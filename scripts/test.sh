#!/usr/bin/env bash
# The one test command: provision the host (idempotent), then run the whole suite in that host's
# virtual environment. The host is .host/ComfyUI (0.3.75) with .venv, or the ComfyUI tree at
# $COMFYUI_PATH with a venv of its own (scripts/host_env.sh). Extra arguments go to pytest, e.g.
#   scripts/test.sh -m "not slow" -x
#   COMFYUI_PATH=/path/to/ComfyUI scripts/test.sh
#   scripts/test.sh --quick            a few minutes: no full-size UNets, no ComfyUI servers
# HN_TEST_WORKERS=N runs the suite on N pytest-xdist workers (at most four), grouped as in
# tests/conftest.py. The default is one process: on a 2-core, 24 GB machine two workers ran out of
# memory (one held the full-size UNets, the other 12 GB more). Passing -n yourself also works.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/host_env.sh"
cd "$hn_root"

"$hn_root/scripts/provision_host.sh" >/dev/null

args=()
chooses_workers=0
for arg in "$@"; do
    case "$arg" in
        --quick) args+=(-m "not slow and not e2e") ;;
        -n|-n*|--numprocesses*|no:xdist|-pno:xdist) chooses_workers=1; args+=("$arg") ;;
        *) args+=("$arg") ;;
    esac
done

workers="${HN_TEST_WORKERS:-1}"
[ "$workers" -le 4 ] || workers=4
if [ "$chooses_workers" = 0 ] && [ "$workers" -gt 1 ]; then
    # loadgroup: the groups of tests/conftest.py, handed out in the order collected (no reordering).
    args=(-n "$workers" --dist loadgroup --no-loadscope-reorder "${args[@]}")
fi

# Bytecode goes beside the venv: the ComfyUI tree the tests import stays exactly as it was.
export PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-$hn_venv/pycache}"
exec "$hn_venv/bin/python" -m pytest "${args[@]}"
