#!/usr/bin/env bash
# Unpack a ComfyUI source archive (top folder ComfyUI/) into DEST, once, after checking its sha256.
#   scripts/unpack_comfyui.sh ARCHIVE SHA256 DEST
# Nothing happens when DEST already holds a ComfyUI tree (main.py). DEST is written only complete
# (unpacked beside it, then renamed), so an interrupted run leaves no half tree behind.
set -euo pipefail
archive="$1" expected="$2" dest="$3"
log() { echo "[unpack] $*" >&2; }

if [ -f "$dest/main.py" ]; then
    log "$dest already holds a ComfyUI tree"
    exit 0
fi
actual="$(sha256sum "$archive" | cut -d' ' -f1)"
if [ "$actual" != "$expected" ]; then
    log "sha256 of $archive is $actual, expected $expected: refusing to unpack it"
    exit 1
fi
mkdir -p "$(dirname "$dest")"
staging="$(mktemp -d "$(dirname "$dest")/.unpack-XXXXXX")"
trap 'rm -rf "$staging"' EXIT
log "unpacking $archive into $dest"
tar -xzf "$archive" -C "$staging"
mv "$staging/ComfyUI" "$dest"
