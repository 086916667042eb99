"""HypernetworkLoaderA1111: a drop-in for ComfyUI's built-in HypernetworkLoader that follows A1111.

Same inputs (names, order, defaults, limits) and output as the built-in node, so a graph made for
it (or by the frontend's A1111 import, see web/a1111_import.js) can use this node unchanged; the
maths are Load Hypernetwork + Apply Hypernetwork's (A1111's activate_output default, every
activation, no dropout at inference), not the built-in loader's.
"""
from __future__ import annotations

from ..hn_comfy.apply.load_and_apply import file_change_signature, load_and_apply
from ..hn_comfy.files.model_folders import list_builtin_loader_names
from ..hn_comfy.ui.types import LOADERS_CATEGORY


class HypernetworkLoaderA1111:
    DESCRIPTION = ("Loads a hypernetwork file and applies it to the model in one node, with "
                   "AUTOMATIC1111's maths. Same inputs as ComfyUI's built-in Load Hypernetwork; the "
                   "result equals Load Hypernetwork (A1111) -> Apply Hypernetwork.")
    CATEGORY = LOADERS_CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("A copy of the model with the hypernetwork applied.",)
    FUNCTION = "load_hypernetwork"

    @classmethod
    def INPUT_TYPES(cls):
        # Mirrors comfy_extras/nodes_hypernetwork.py HypernetworkLoader (0.3.75 and 0.33).
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The diffusion model to patch (left unchanged)."}),
                "hypernetwork_name": (list_builtin_loader_names(), {
                    "tooltip": "A file in ComfyUI's models/hypernetworks folder (the built-in loader's list)."}),
                "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01,
                                        "tooltip": "Multiplier of the hypernetwork's change (A1111's "
                                                   "<hypernet:name:strength>); 0 leaves the model as it was."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, hypernetwork_name, **_constants):
        return file_change_signature(hypernetwork_name)

    def load_hypernetwork(self, model, hypernetwork_name, strength, unique_id=None):
        return (load_and_apply(model, hypernetwork_name, strength, unique_id),)
