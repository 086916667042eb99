"""Saving into a model folder: free or overwritten names that never leave the folder, and Save
Hypernetwork's write of a network with its optimizer state."""
from __future__ import annotations

import copy
import dataclasses
import logging
import os

import folder_paths

from ...hn_core import as_scheduled
from ...hn_core.training import save_with_optimizer_state
from .optimizer_state import optimizer_state_for

logger = logging.getLogger(__name__)

FORMATS = {"pt (A1111)": ".pt", "safetensors": ".safetensors"}


def save_to_model_folder(hypernetwork, filename: str, format: str, overwrite: bool) -> str:
    """Write `hypernetwork` (+ its .optim sidecar) into models/hypernetworks; return its relative name."""
    network = as_scheduled(hypernetwork).network
    root = folder_paths.get_folder_paths("hypernetworks")[0]
    path = target_path(root, filename, FORMATS[format], overwrite)
    stem = os.path.splitext(os.path.basename(path))[0]
    state = optimizer_state_for(network)
    wrote_sidecar = save_with_optimizer_state(_named(network, stem), path, state)
    logger.info("saved hypernetwork %s%s", path, " (+ .optim)" if wrote_sidecar else "")
    return os.path.relpath(path, root).replace(os.sep, "/")


def target_path(root: str, filename: str, suffix: str, overwrite: bool, folder: str = "models/hypernetworks") -> str:
    """The path to write: `filename` under `root`, with a numbered suffix when it exists and
    `overwrite` is off. Refuses names that leave `root` (`folder` names it in messages)."""
    relative = filename.strip().replace("\\", "/")
    for known in FORMATS.values():
        if relative.lower().endswith(known):
            relative = relative[: -len(known)]
    parts = relative.split("/")
    if not relative or relative.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"filename {filename!r} must be a relative name inside {folder} "
                         "(e.g. 'my_style' or 'styles/my_style')")
    base = os.path.join(os.path.abspath(root), *parts)
    if os.path.commonpath([base, os.path.abspath(root)]) != os.path.abspath(root):
        raise ValueError(f"filename {filename!r} leaves {folder}")
    path = base + suffix
    if overwrite or not os.path.exists(path):
        return path
    number = 1
    while os.path.exists(f"{base}_{number:05}{suffix}"):
        number += 1
    numbered = f"{base}_{number:05}{suffix}"
    logger.info("%s exists: saving as %s (turn on overwrite to replace it)", path, numbered)
    return numbered



def _named(network, stem: str):
    """The network as it should be written: a nameless one takes the file's name. The shared
    input object is left as it is (a shallow copy shares the weights, not the info)."""
    if network.info.name:
        return network
    named = copy.copy(network)
    named.info = dataclasses.replace(network.info, name=stem, extra=dict(network.info.extra))
    return named
