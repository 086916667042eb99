"""Apply Hypernetwork's work: a clone of the model with the hypernetwork folded in or patched on."""
from __future__ import annotations

import logging
import math

from ...hn_core import as_scheduled
from ...hn_core.inference.family_match import match_family
from ..ui.messages import show_on_node
from .companion_patcher import companion_patcher
from .folding import add_patches, can_fold, fold_into, unfold_all
from .model_attention import attention_key_widths

logger = logging.getLogger(__name__)


def apply_hypernetwork(model, hypernetwork, strength: float, speed_path: bool = True, node_id=None):
    """A clone of `model` with `hypernetwork` (a network or a ScheduledHypernetwork) applied at
    `strength`; the input model is left as it was. `node_id` receives the family warning, if any."""
    if not math.isfinite(strength):
        raise ValueError(f"Apply Hypernetwork: strength must be a finite number, got {strength}")
    scheduled = as_scheduled(hypernetwork)
    network, profile = scheduled.network, scheduled.profile
    _warn_if_family_differs(model, network, node_id)

    patched = model.clone()
    if speed_path and can_fold(patched, network, profile):
        fold_into(patched, network, strength, profile)
        return patched

    companion_for = _companion_factory(model)
    unfold_all(patched, companion_for)
    sigma_range = None
    if not profile.full_range:
        sampling = model.get_model_object("model_sampling")
        sigma_range = (sampling.percent_to_sigma(profile.start_percent),
                       sampling.percent_to_sigma(profile.end_percent))
    add_patches(patched, network, strength, profile, sigma_range, companion_for(network))
    return patched


def _companion_factory(model):
    def companion_for(network):
        return [companion_patcher(network, model.load_device, model.offload_device)]
    return companion_for


def _warn_if_family_differs(model, network, node_id) -> None:
    widths = attention_key_widths(model)
    match = match_family(network.dims, widths["attn1"], widths["attn2"], network.info.name)
    if match.warning:
        logger.warning("Apply Hypernetwork: %s", match.warning)
        show_on_node(node_id, "Warning: " + match.warning)
