"""The part of Hypernetwork to LoRA and Bake Hypernetwork that is the same: from a MODEL and a
HYPERNETWORK to exact (or fitted) weight changes per attention layer, and the fidelity report."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from ..hn_core import as_scheduled
from ..hn_core.lora_export import ExportError, LayerChange, is_affine
from ..hn_core.lora_file import build_changes
from .export_calibration import calibrate
from .export_inputs import ProbeInputs, model_layers, probe_inputs
from .node_messages import show_on_node
from .types import CATEGORY, HYPERNETWORK

logger = logging.getLogger(__name__)


class ExportNode:
    """What Hypernetwork to LoRA and Bake Hypernetwork declare alike: the pack's category, and output
    nodes (they run even when nothing consumes their outputs, and show their report on the node)."""

    CATEGORY = CATEGORY
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


@dataclass
class ExportPlan:
    network: object
    profile: object
    strength: float
    changes: dict[str, LayerChange]
    unused_dims: list[int]
    exact: bool
    inputs: ProbeInputs
    notes: list[str] = field(default_factory=list)


def plan_export(node: str, model, hypernetwork, strength: float, conditioning, latent, seed: int,
                calibration_steps: int) -> ExportPlan:
    """Weight changes of the hypernetwork for this model; errors name the node and the problem."""
    if not math.isfinite(strength):
        raise ValueError(f"{node}: strength must be a finite number, got {strength}")
    scheduled = as_scheduled(hypernetwork)
    network, profile = scheduled.network, scheduled.profile
    inputs = probe_inputs(model, conditioning, latent, seed)
    layers = model_layers(model)
    notes = []
    affines = None
    try:
        if not is_affine(network):
            fit = calibrate(applied_reference(model, scheduled, strength), network, inputs, calibration_steps)
            affines = fit.affines()
            for (kind, dim), (k_res, k_new, v_res, v_new, samples) in sorted(fit.residuals().items()):
                notes.append(f"linear fit {kind} dim {dim} on {samples} calibration tokens: residual key {k_res:.3g}, "
                             f"value {v_res:.3g} of the MLP output (expected on new inputs: {k_new:.3g}, {v_new:.3g})")
            if not inputs.from_user:
                notes.append("cross-attention fitted on a random stand-in context: connect a CONDITIONING "
                             "with your prompts for a fit on real text")
        changes, unused = build_changes(network, layers, strength, profile, affines)
    except ExportError as exc:
        raise ExportError(f"{node}: {exc}") from None
    if not changes:
        raise ExportError(f"{node}: the strength is 0 on every layer the hypernetwork patches: nothing to export")
    return ExportPlan(network, profile, strength, changes, unused, affines is None, inputs, notes)


def applied_reference(model, hypernetwork, strength: float):
    """The model as Apply Hypernetwork patches it (exact path): what the export must reproduce."""
    from .apply_hypernetwork import ApplyHypernetwork

    (applied,) = ApplyHypernetwork().apply(model, hypernetwork, strength, speed_path=False)
    return applied


def report(node: str, lines: list[str], unique_id) -> str:
    text = "\n".join(lines)
    logger.info("%s:\n%s", node, text)
    show_on_node(unique_id, text)
    return text
