"""Load and save hypernetworks by path, choosing the file form by content and suffix."""
from __future__ import annotations

import os

from ..errors import HypernetworkError
from .a1111_pt import read_a1111, write_a1111
from .pack_safetensors import read_safetensors, write_safetensors
from ..network.hypernetwork import Hypernetwork

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
SUPPORTED_SUFFIXES = (".pt", ".pth", ".safetensors")


def load_hypernetwork(path) -> Hypernetwork:
    """Read an A1111 `.pt` (safely) or the pack's `.safetensors` form; validate everything."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise HypernetworkError(path, "file not found")
    if os.path.isdir(path):
        raise HypernetworkError(path, "is a folder, not a hypernetwork file")
    if os.path.getsize(path) == 0:
        raise HypernetworkError(path, "the file is empty")
    if _looks_like_safetensors(path):
        return read_safetensors(path)
    if path.lower().endswith(SAFETENSORS_SUFFIXES):
        raise HypernetworkError(path, "corrupt or truncated safetensors file (bad header)")
    return read_a1111(path)


def save_hypernetwork(net: Hypernetwork, path) -> None:
    """Write atomically: `.safetensors` in the pack's form, anything else as an A1111 `.pt`."""
    path = os.fspath(path)
    if path.lower().endswith(SAFETENSORS_SUFFIXES):
        write_safetensors(net, path)
    else:
        write_a1111(net, path)


def _looks_like_safetensors(path) -> bool:
    # A safetensors file starts with an 8-byte little-endian header length, then a JSON object.
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    header_len = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 0 < header_len < os.path.getsize(path)
