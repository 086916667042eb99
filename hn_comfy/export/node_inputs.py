"""What Hypernetwork to LoRA and Bake Hypernetwork declare alike: their category, output-node flag and
the inputs they share (model, hypernetwork, strength; the optional probe inputs)."""
from __future__ import annotations

from ..ui.types import HYPERNETWORK, MERGING_CATEGORY


class ExportNode:
    """What Hypernetwork to LoRA and Bake Hypernetwork declare alike: the pack's category, and output
    nodes (they run even when nothing consumes their outputs, and show their report on the node)."""

    CATEGORY = MERGING_CATEGORY
    OUTPUT_NODE = True


_STRENGTH_INPUT = ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01, "tooltip":
                            "As Apply Hypernetwork's strength (times the Hypernetwork Strength profile per layer)."})


def required_export_inputs(model_tooltip: str, verb: str) -> dict:
    """The model, hypernetwork and strength inputs both export nodes start with; `verb` completes
    "a step range cannot be ..." in the hypernetwork's tooltip."""
    return {
        "model": ("MODEL", {"tooltip": model_tooltip}),
        "hypernetwork": (HYPERNETWORK, {"tooltip": "From Load Hypernetwork (optionally through Hypernetwork "
                                                   f"Strength; a step range cannot be {verb})."}),
        "strength": _STRENGTH_INPUT,
    }


def optional_probe_inputs() -> dict:
    return {
        "conditioning": ("CONDITIONING", {"tooltip": "Prompts for measuring the result and, for a non-linear "
                                          "network, for fitting its cross-attention part. Without: a seeded "
                                          "random stand-in text context."}),
        "latent": ("LATENT", {"tooltip": "Only its size is used: the latent size of the measurement and of the "
                              "calibration sampling (default 64x64, i.e. 512 px)."}),
        "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF, "tooltip":
                         "Seed of the measurement's noisy latent and of the calibration sampling."}),
        "calibration_steps": ("INT", {"default": 4, "min": 1, "max": 50, "tooltip":
                                      "Non-linear networks only: Euler steps whose self-attention inputs the "
                                      "linear fit learns from."}),
    }
