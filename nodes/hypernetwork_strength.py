"""HypernetworkStrength: where and when a hypernetwork acts (attention kind, blocks, step range)."""
from __future__ import annotations

from ..hn_core import StrengthProfile, as_scheduled, parse_block_weights
from ..hn_comfy.ui.types import HYPERNETWORK, LOADERS_CATEGORY


def _weight(default: float, tooltip: str):
    return ("FLOAT", {"default": default, "min": -10.0, "max": 10.0, "step": 0.01, "tooltip": tooltip})


def _percent(default: float, tooltip: str):
    return ("FLOAT", {"default": default, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip": tooltip})


class HypernetworkStrength:
    DESCRIPTION = ("Sets how strongly a hypernetwork acts on self-attention and cross-attention, per UNet "
                   "block group or single block, and during which part of sampling. Apply Hypernetwork's "
                   "strength multiplies all of these.")
    CATEGORY = LOADERS_CATEGORY
    RETURN_TYPES = (HYPERNETWORK,)
    OUTPUT_TOOLTIPS = ("The same hypernetwork with this strength profile.",)
    FUNCTION = "set_profile"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "hypernetwork": (HYPERNETWORK, {"tooltip": "From Load Hypernetwork."}),
            "self_attention": _weight(1.0, "Multiplier on self-attention (attn1) layers."),
            "cross_attention": _weight(1.0, "Multiplier on cross-attention (attn2, text) layers."),
            "input_blocks": _weight(1.0, "Multiplier on the UNet's input (down) blocks."),
            "middle_block": _weight(1.0, "Multiplier on the UNet's middle block."),
            "output_blocks": _weight(1.0, "Multiplier on the UNet's output (up) blocks."),
            "start_percent": _percent(0.0, "Start acting at this fraction of the sampling schedule "
                                           "(as ConditioningSetTimestepRange)."),
            "end_percent": _percent(1.0, "Stop acting after this fraction of the sampling schedule."),
            "block_weights": ("STRING", {"default": "", "multiline": False,
                                         "tooltip": "Optional per-block overrides of the group weight, e.g. "
                                                    "'input 4: 0.5, middle 0: 0, output 3: 1.2'."}),
        }}

    def set_profile(self, hypernetwork, self_attention, cross_attention, input_blocks, middle_block,
                    output_blocks, start_percent, end_percent, block_weights=""):
        try:
            profile = StrengthProfile(
                attn1=self_attention, attn2=cross_attention, input=input_blocks, middle=middle_block,
                output=output_blocks, block_weights=parse_block_weights(block_weights or ""),
                start_percent=start_percent, end_percent=end_percent)
        except ValueError as exc:
            raise ValueError(f"Hypernetwork Strength: {exc}") from None
        return (as_scheduled(hypernetwork).with_profile(profile),)
