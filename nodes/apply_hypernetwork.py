"""ApplyHypernetwork: patch a model's attention with a hypernetwork, on a clone."""
from __future__ import annotations

from ..hn_comfy.apply.apply_network import apply_hypernetwork
from ..hn_comfy.ui.types import HYPERNETWORK, LOADERS_CATEGORY


class ApplyHypernetwork:
    DESCRIPTION = ("Applies a hypernetwork to a model's self- and cross-attention key/value inputs, as "
                   "AUTOMATIC1111 does. The input model is not changed; chain several to stack them "
                   "(the second sees the first's output, as in A1111).")
    CATEGORY = LOADERS_CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("A copy of the model with the hypernetwork applied.",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The diffusion model to patch (left unchanged)."}),
                "hypernetwork": (HYPERNETWORK, {"tooltip": "From Load Hypernetwork (optionally through "
                                                           "Hypernetwork Strength)."}),
                "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01,
                                        "tooltip": "Multiplier of the hypernetwork's change; 0 leaves the "
                                                   "model exactly as it was."}),
            },
            "optional": {
                "speed_path": ("BOOLEAN", {"default": True, "tooltip":
                    "Fold a linear hypernetwork (no activation, no layer norm) acting over the whole "
                    "schedule into the attention weights: same result, no extra cost per step. "
                    "Off: always run the hypernetwork before the projections."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def apply(self, model, hypernetwork, strength, speed_path=True, unique_id=None):
        return (apply_hypernetwork(model, hypernetwork, strength, speed_path, unique_id),)
