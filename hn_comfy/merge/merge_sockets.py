"""Merge Hypernetworks' work: the connected sockets to hn_core.merge, with labels naming each input's
file, a progress bar over the dims, and the summary shown on the node."""
from __future__ import annotations

import logging
import os

import comfy.model_management
import comfy.utils

from ...hn_core import ScheduledHypernetwork, as_scheduled
from ...hn_core.merge import MODES, MergeInput, common_profile, dims_coverage, merge_hypernetworks
from ..files.model_folders import LOADED
from ..ui.messages import show_on_node

logger = logging.getLogger(__name__)

MAX_INPUTS = 4


def merge_sockets(mode: str, sockets: dict, node_id=None) -> tuple:
    """(the merged ScheduledHypernetwork, a summary) of the `hypernetwork_<n>` / `weight_<n>` sockets."""
    labelled, inputs = [], []
    for n in range(1, MAX_INPUTS + 1):
        value = sockets.get(f"hypernetwork_{n}")
        if value is None:
            continue
        scheduled = as_scheduled(value)
        label = _label(n, scheduled.network)
        labelled.append((label, scheduled.profile))
        inputs.append(MergeInput(scheduled.network, float(sockets.get(f"weight_{n}", 1.0)), label))
    try:
        profile = common_profile(labelled, exact=mode != MODES[0])
        network = merge_hypernetworks(inputs, mode, on_dim=_progress(node_id))
    except ValueError as exc:
        raise ValueError(f"Merge Hypernetworks: {exc}") from None
    summary = _summary(mode, inputs, network)
    logger.info("Merge Hypernetworks: %s", summary.replace("\n", "; "))
    show_on_node(node_id, summary)
    return ScheduledHypernetwork(network, profile), summary


def _progress(node_id):
    """on_dim for hn_core.merge: a ComfyUI progress bar over the dims (made at the first call),
    and the point where a cancelled prompt stops the merge."""
    bar = None

    def on_dim(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = comfy.utils.ProgressBar(total, node_id=node_id)
        bar.update_absolute(done, total)
        comfy.model_management.throw_exception_if_processing_interrupted()
    return on_dim


def _label(n: int, network) -> str:
    """How messages name an input: its socket, and its file or saved name where known."""
    path = LOADED.path_of(network)
    known = os.path.basename(path) if path else network.info.name
    return f"hypernetwork_{n} ({known})" if known else f"hypernetwork_{n}"


def _summary(mode: str, inputs, network) -> str:
    config = network.config
    lines = [f"{mode} of " + ", ".join(f"{item.label} x{item.weight:g}" for item in inputs),
             f"result: layer_structure {list(config.layer_structure)}, activation {config.activation_func}, "
             f"layer norm {'on' if config.is_layer_norm else 'off'}, dims {', '.join(map(str, network.dims))}, "
             f"{network.parameter_count():,} parameters"]
    return "\n".join(lines + dims_coverage(inputs))
