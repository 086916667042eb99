"""MergeHypernetworks: several HYPERNETWORK inputs into one network (see hn_core.merge)."""
from __future__ import annotations

import logging
import os

import comfy.model_management
import comfy.utils

from ..hn_core import ScheduledHypernetwork, as_scheduled
from ..hn_core.merge import MODES, MergeInput, common_profile, dims_coverage, merge_hypernetworks
from .hypernetwork_files import LOADED
from .node_messages import show_on_node
from .types import CATEGORY, HYPERNETWORK

logger = logging.getLogger(__name__)

MAX_INPUTS = 4
REQUIRED_INPUTS = 2


def _weight(n: int):
    return ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01, "tooltip":
                      f"weighted sum: hypernetwork_{n}'s share (the weights are divided by their sum, so 1 and 1 "
                      f"is the mean, 3 and 1 is 75/25). exact stack: hypernetwork_{n}'s strength in the chain."})


def _socket(n: int):
    tooltip = (f"Network number {n}; in an exact stack it acts after networks 1..{n - 1}." if n > 1 else
               "The first network; in an exact stack it acts first (A1111 order).")
    return (HYPERNETWORK, {"tooltip": tooltip})


class MergeHypernetworks:
    DESCRIPTION = ("Merges hypernetworks into one that Save Hypernetwork writes as a single file (A1111 and "
                   "ComfyUI's built-in loader read it). 'weighted sum' blends the parameters of networks of the "
                   "same structure; 'exact stack' gives the linear network equal to applying the inputs one "
                   "after another at their weights, for linear networks of any layer structure.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (HYPERNETWORK, "STRING")
    RETURN_NAMES = ("hypernetwork", "summary")
    OUTPUT_TOOLTIPS = ("The merged network (a new one; the inputs are unchanged). Apply it at strength 1 to "
                       "get what the weights describe.",
                       "What was merged: mode, inputs and weights, the result's structure, dims that only "
                       "some inputs have.")
    FUNCTION = "merge"

    @classmethod
    def INPUT_TYPES(cls):
        required = {"mode": (list(MODES), {"default": MODES[0], "tooltip":
                    "weighted sum: each parameter is the weighted mean of the inputs' (same structure "
                    "needed; best for networks from one training run). exact stack: the single network "
                    "equal to applying input 1, then 2, ... at their weights (linear networks only)."})}
        optional = {}
        for n in range(1, MAX_INPUTS + 1):
            group = required if n <= REQUIRED_INPUTS else optional
            group[f"hypernetwork_{n}"] = _socket(n)
            group[f"weight_{n}"] = _weight(n)
        return {"required": required, "optional": optional, "hidden": {"unique_id": "UNIQUE_ID"}}

    def merge(self, mode, unique_id=None, **sockets):
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
            network = merge_hypernetworks(inputs, mode, on_dim=_progress(unique_id))
        except ValueError as exc:
            raise ValueError(f"Merge Hypernetworks: {exc}") from None
        summary = _summary(mode, inputs, network)
        logger.info("Merge Hypernetworks: %s", summary.replace("\n", "; "))
        show_on_node(unique_id, summary)
        return (ScheduledHypernetwork(network, profile), summary)


def _progress(unique_id):
    """on_dim for hn_core.merge: a ComfyUI progress bar over the dims (made at the first call),
    and the point where a cancelled prompt stops the merge."""
    bar = None

    def on_dim(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = comfy.utils.ProgressBar(total, node_id=unique_id)
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
