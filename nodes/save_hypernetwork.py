"""SaveHypernetwork: write a HYPERNETWORK into models/hypernetworks, atomically, never overwriting silently."""
from __future__ import annotations

import copy
import dataclasses
import logging
import os

import folder_paths

from ..hn_core import as_scheduled
from ..hn_core.training import save_with_optimizer_state
from .optimizer_state_lookup import optimizer_state_for
from .train_hypernetwork import TRAINING_CATEGORY
from .types import HYPERNETWORK

logger = logging.getLogger(__name__)

FORMATS = {"pt (A1111)": ".pt", "safetensors": ".safetensors"}


class SaveHypernetwork:
    DESCRIPTION = ("Saves a hypernetwork to models/hypernetworks as an AUTOMATIC1111 .pt (with its optimizer "
                   "state in a .optim sidecar, so training can resume) or as this pack's .safetensors form.")
    CATEGORY = TRAINING_CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("file",)
    OUTPUT_TOOLTIPS = ("The saved file's name inside models/hypernetworks (as Load Hypernetwork lists it).",)
    FUNCTION = "save"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "hypernetwork": (HYPERNETWORK, {"tooltip": "From Train Hypernetwork or Load Hypernetwork."}),
            "filename": ("STRING", {"default": "my_hypernetwork", "tooltip": "File name inside "
                                    "models/hypernetworks (subfolders allowed, no extension needed)."}),
            "format": (list(FORMATS), {"default": "pt (A1111)", "tooltip": ".pt loads in A1111 and ComfyUI's "
                                       "built-in loader; .safetensors cannot carry code. Both get a .optim "
                                       "sidecar when there is optimizer state."}),
            "overwrite": ("BOOLEAN", {"default": False, "tooltip": "Replace an existing file of that name. "
                                      "When off, a free numbered name (_00001, ...) is used instead."}),
        }}

    def save(self, hypernetwork, filename, format, overwrite):
        network = as_scheduled(hypernetwork).network
        root = folder_paths.get_folder_paths("hypernetworks")[0]
        path = target_path(root, filename, FORMATS[format], overwrite)
        stem = os.path.splitext(os.path.basename(path))[0]
        state = optimizer_state_for(network)
        wrote_sidecar = save_with_optimizer_state(_named(network, stem), path, state)
        relative = os.path.relpath(path, root).replace(os.sep, "/")
        logger.info("saved hypernetwork %s%s", path, " (+ .optim)" if wrote_sidecar else "")
        return {"ui": {"text": [relative]}, "result": (relative,)}


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
