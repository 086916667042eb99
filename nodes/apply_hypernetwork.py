"""ApplyHypernetwork: patch a model's attention with a hypernetwork, on a clone."""
from __future__ import annotations

import logging
import math

from ..hn_core import as_scheduled
from ..hn_core.family_match import match_family
from .companion_patcher import companion_patcher
from .hypernetwork_folding import add_patches, can_fold, fold_into, unfold_all
from .model_attention import attention_key_widths
from .node_messages import show_on_node
from .types import CATEGORY, HYPERNETWORK

logger = logging.getLogger(__name__)


class ApplyHypernetwork:
    DESCRIPTION = ("Applies a hypernetwork to a model's self- and cross-attention key/value inputs, as "
                   "AUTOMATIC1111 does. The input model is not changed; chain several to stack them "
                   "(the second sees the first's output, as in A1111).")
    CATEGORY = CATEGORY
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
        if not math.isfinite(strength):
            raise ValueError(f"Apply Hypernetwork: strength must be a finite number, got {strength}")
        scheduled = as_scheduled(hypernetwork)
        network, profile = scheduled.network, scheduled.profile
        _warn_if_family_differs(model, network, unique_id)

        patched = model.clone()
        if speed_path and can_fold(patched, network, profile):
            fold_into(patched, network, strength, profile)
            return (patched,)

        companion_for = _companion_factory(model)
        unfold_all(patched, companion_for)
        sigma_range = None
        if not profile.full_range:
            sampling = model.get_model_object("model_sampling")
            sigma_range = (sampling.percent_to_sigma(profile.start_percent),
                           sampling.percent_to_sigma(profile.end_percent))
        add_patches(patched, network, strength, profile, sigma_range, companion_for(network))
        return (patched,)


def _companion_factory(model):
    def companion_for(network):
        return [companion_patcher(network, model.load_device, model.offload_device)]
    return companion_for


def _warn_if_family_differs(model, network, unique_id) -> None:
    widths = attention_key_widths(model)
    match = match_family(network.dims, widths["attn1"], widths["attn2"], network.info.name)
    if match.warning:
        logger.warning("Apply Hypernetwork: %s", match.warning)
        show_on_node(unique_id, "Warning: " + match.warning)
