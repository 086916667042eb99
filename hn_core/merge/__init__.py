"""Merging several hypernetworks into one network that a single file can hold.

Two modes:

* ``weighted sum``: every parameter is the weighted mean of the inputs' parameters (networks of
  the same structure; the A1111 merger scripts' blend). Meaningful for networks that share an
  ancestor (snapshots of one run, fine-tunes of one network); independently trained networks
  have hidden units that do not line up, and their mean is not the mean of their effects.
* ``exact stack``: the one network whose effect at strength 1 equals applying the inputs one
  after another (A1111 order: input 1 first) at the given strengths. Exact only for linear
  networks (no activation, no layer norm), whatever their layer structures.

In both modes a network acts only at the dims it has, as A1111 applies it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from ..network.config import HypernetworkInfo
from ..network.hypernetwork import Hypernetwork
from .exact_stack import exact_stack
from .profiles import common_profile
from .weighted_sum import weighted_sum

__all__ = ["MODES", "MergeInput", "common_profile", "dims_coverage", "merge_hypernetworks"]

WEIGHTED_SUM = "weighted sum"
EXACT_STACK = "exact stack"
MODES = (WEIGHTED_SUM, EXACT_STACK)


@dataclass(frozen=True)
class MergeInput:
    """One network to merge. `label` names it in every message (e.g. "hypernetwork_2 (style.pt)").

    `weight`: in a weighted sum, its share (the weights are divided by their sum); in an exact
    stack, its strength in the chain.
    """

    network: Hypernetwork
    weight: float
    label: str


def merge_hypernetworks(inputs: Sequence[MergeInput], mode: str,
                        on_dim: Callable[[int, int], None] | None = None) -> Hypernetwork:
    """A new network (the inputs are left as they are); raises ValueError naming the input at fault.

    `on_dim(done, total)` is called after each dim (for a progress bar: an exact stack of SDXL-sized
    networks takes seconds on a CPU)."""
    inputs = list(inputs)
    if mode not in MODES:
        raise ValueError(f"unknown merge mode {mode!r} (expected one of {', '.join(MODES)})")
    if len(inputs) < 2:
        raise ValueError(f"merging needs at least two hypernetworks, got {len(inputs)}")
    for item in inputs:
        if not math.isfinite(item.weight):
            raise ValueError(f"{item.label}: weight must be a finite number, got {item.weight}")
    build = weighted_sum if mode == WEIGHTED_SUM else exact_stack
    config, pair_states = build(inputs, on_dim or (lambda done, total: None))
    network = Hypernetwork(pair_states.keys(), config, merged_info(inputs, mode), device="meta")
    for dim, states in pair_states.items():
        for module, state in zip(network.pair(dim), states):
            module.load_state_dict(state, strict=True, assign=True)
    return network


def merged_info(inputs: Sequence[MergeInput], mode: str) -> HypernetworkInfo:
    """Provenance of a merge. No name (Save Hypernetwork then names it after its file), step 0
    (a new network), the checkpoint only where every input names the same one."""
    def shared(field: str):
        values = {getattr(item.network.info, field) for item in inputs}
        return values.pop() if len(values) == 1 else None

    parts = ", ".join(f"{item.label} x{item.weight:g}" for item in inputs)
    return HypernetworkInfo(name=None, step=0, sd_checkpoint=shared("sd_checkpoint"),
                            sd_checkpoint_name=shared("sd_checkpoint_name"),
                            optional_info=f"Merged ({mode}) from {parts}")


def dims_coverage(inputs: Sequence[MergeInput]) -> list[str]:
    """One line per dim that not every input has: which inputs act there."""
    dims = sorted({dim for item in inputs for dim in item.network.dims})
    lines = []
    for dim in dims:
        having = [item.label for item in inputs if item.network.has_dim(dim)]
        if len(having) < len(inputs):
            lines.append(f"dim {dim}: only {', '.join(having)}")
    return lines
