"""LoadHypernetwork: pick a file from models/hypernetworks, output it as HYPERNETWORK."""
from __future__ import annotations

from ..hn_core import ScheduledHypernetwork
from ..hn_core.network.describe import describe_as_text
from ..hn_comfy.files.model_folders import LOADED, file_signature, list_hypernetwork_files, resolve_path
from ..hn_comfy.ui.types import HYPERNETWORK, LOADERS_CATEGORY


class LoadHypernetwork:
    DESCRIPTION = ("Loads an AUTOMATIC1111 / NovelAI hypernetwork (.pt, .pth) or this pack's .safetensors "
                   "form, safely (no pickled code is ever run), and shows what it contains.")
    CATEGORY = LOADERS_CATEGORY
    RETURN_TYPES = (HYPERNETWORK, "STRING")
    RETURN_NAMES = ("hypernetwork", "info")
    OUTPUT_TOOLTIPS = ("The loaded hypernetwork, for Apply Hypernetwork.",
                       "A text summary: dims, layer structure, activation, parameter count, training step.")
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
        # Re-run when the file on disk changes, even under the same name.
        try:
            return str(file_signature(resolve_path(hypernetwork_name)))
        except Exception:  # the error is reported properly when the node runs
            return float("nan")

    def load(self, hypernetwork_name):
        network = LOADED.get(resolve_path(hypernetwork_name))
        text = describe_as_text(network)
        return {"ui": {"text": [text]}, "result": (ScheduledHypernetwork(network), text)}
