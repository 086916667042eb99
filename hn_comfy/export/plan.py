"""The part of Hypernetwork to LoRA and Bake Hypernetwork that is the same: from a MODEL and a
HYPERNETWORK to exact (or fitted) weight changes per attention layer, and the report."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from ...hn_core import as_scheduled
from ...hn_core.export.lora_export import ExportError, LayerChange, is_affine
from ...hn_core.export.lora_file import build_changes
from ..apply.apply_network import apply_hypernetwork
from ..ui.messages import show_on_node
from .calibration import calibrate
from .probe_inputs import ProbeInputs, model_layers, probe_inputs

logger = logging.getLogger(__name__)


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
    return apply_hypernetwork(model, hypernetwork, strength, speed_path=False)


def report(node: str, lines: list[str], unique_id) -> str:
    text = "\n".join(lines)
    logger.info("%s:\n%s", node, text)
    show_on_node(unique_id, text)
    return text
