"""LoadHypernetwork: pick a file from models/hypernetworks, output it as HYPERNETWORK."""
from __future__ import annotations

from ..hn_comfy.files.loader_output import loader_output, loader_signature
from ..hn_comfy.files.model_folders import list_hypernetwork_files
from ..hn_comfy.ui.types import HYPERNETWORK, LOADERS_CATEGORY


class LoadHypernetwork:
    DESCRIPTION = ("Loads an AUTOMATIC1111 / NovelAI hypernetwork (.pt, .pth) or this pack's .safetensors "
                   "form, safely (no pickled code is ever run), and shows what it contains, its hashes and "
                   "the A1111 sidecars beside it (<name>.json user metadata, <name>.png / <name>.preview.png).")
    CATEGORY = LOADERS_CATEGORY
    # Outputs are appended, never reordered: saved workflows link them by index.
    RETURN_TYPES = (HYPERNETWORK, "STRING", "STRING", "FLOAT")
    RETURN_NAMES = ("hypernetwork", "info", "activation_text", "preferred_weight")
    OUTPUT_TOOLTIPS = ("The loaded hypernetwork, for Apply Hypernetwork.",
                       "A text summary: dims, layer structure, activation, parameter count, training step, "
                       "sha256 and A1111's short hash, the sidecar's fields.",
                       "The sidecar's 'activation text' (trigger words), empty if none: add it to the prompt.",
                       "The sidecar's 'preferred weight' when set and not 0 (A1111's rule), else 1.0: "
                       "wire it into Apply Hypernetwork's strength.")
    FUNCTION = "load"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "hypernetwork_name": (list_hypernetwork_files(), {
                "tooltip": "A file in ComfyUI's models/hypernetworks folder (or an extra_model_paths entry)."}),
        }}

    @classmethod
    def IS_CHANGED(cls, hypernetwork_name):
        return loader_signature(hypernetwork_name)

    def load(self, hypernetwork_name):
        return loader_output(hypernetwork_name)
