"""The `<file>.optim` sidecar A1111 writes beside a hypernetwork to resume training.

It holds `optimizer_name`, `optimizer_state_dict` and `hash` (first 10 hex chars of the
sha256 of the `.pt`); the state is used only when that hash matches the file next to it.
"""
from __future__ import annotations

import logging
import os

import torch

from ..atomic_write import atomic_write
from ..errors import HypernetworkError
from .file_hash import short_hash_of_file
from .safe_torch_load import load_pickle_safely

logger = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".optim"


def sidecar_path(hypernetwork_path) -> str:
    return os.fspath(hypernetwork_path) + SIDECAR_SUFFIX


def save_optimizer_state(hypernetwork_path, optimizer_name: str, optimizer_state_dict: dict) -> None:
    """Write the sidecar for an already saved hypernetwork file."""
    data = {
        "optimizer_name": optimizer_name,
        "optimizer_state_dict": optimizer_state_dict,
        "hash": short_hash_of_file(hypernetwork_path),
    }
    atomic_write(sidecar_path(hypernetwork_path), lambda f: torch.save(data, f))


def load_optimizer_state(hypernetwork_path) -> dict | None:
    """The sidecar's dict, or None when there is none or it belongs to another version of the file."""
    path = sidecar_path(hypernetwork_path)
    if not os.path.exists(path):
        return None
    data = load_pickle_safely(path)
    if not isinstance(data, dict) or "optimizer_state_dict" not in data:
        raise HypernetworkError(path, "not an optimizer sidecar (no optimizer_state_dict)")
    if data.get("hash") != short_hash_of_file(hypernetwork_path):
        logger.warning("%s: optimizer state ignored, it was saved for a different version of %s",
                       path, os.path.basename(os.fspath(hypernetwork_path)))
        return None
    return {"optimizer_name": data.get("optimizer_name", "AdamW"),
            "optimizer_state_dict": data["optimizer_state_dict"]}
