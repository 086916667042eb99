#!/usr/bin/env bash
# The one test command: provision the host (idempotent), then run the whole suite in .venv.
# Extra arguments go to pytest, e.g.  scripts/test.sh -m "not slow" -x
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# The provisioner prints the ComfyUI root last; the tests find it the same way (COMFYUI_PATH or .host/).
"$root/scripts/provision_host.sh" >/dev/null

exec "$root/.venv/bin/python" -m pytest "$@"
