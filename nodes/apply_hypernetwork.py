"""ApplyHypernetwork: patch a model's attention with a hypernetwork, on a clone."""
from __future__ import annotations

import math

from ..hn_core import HypernetworkPatch, as_scheduled
from .types import CATEGORY, HYPERNETWORK


class ApplyHypernetwork:
    DESCRIPTION = ("Applies a hypernetwork to a model's self- and cross-attention key/value inputs, as "
                   "AUTOMATIC1111 does. The input model is not changed; chain several to stack them.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("A copy of the model with the hypernetwork applied.",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The diffusion model to patch (left unchanged)."}),
            "hypernetwork": (HYPERNETWORK, {"tooltip": "From Load Hypernetwork."}),
            "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01,
                                    "tooltip": "Multiplier of the hypernetwork's change; 0 leaves the model as is."}),
        }}

    def apply(self, model, hypernetwork, strength):
        if not math.isfinite(strength):
            raise ValueError(f"Apply Hypernetwork: strength must be a finite number, got {strength}")
        patched = model.clone()
        patch = HypernetworkPatch(as_scheduled(hypernetwork).network, strength)
        patched.set_model_attn1_patch(patch)
        patched.set_model_attn2_patch(patch)
        return (patched,)
