"""Find the optimizer state to resume a HYPERNETWORK input with.

A network trained earlier in the graph carries its state along (hn_core.training.resume); one
picked with Load Hypernetwork has it in the `.optim` sidecar beside its file.
"""
from __future__ import annotations

import logging

from ...hn_core import Hypernetwork, HypernetworkError
from ...hn_core.training import OptimizerState, attached_optimizer_state, read_optimizer_sidecar
from .model_folders import LOADED

logger = logging.getLogger(__name__)


def optimizer_state_for(network: Hypernetwork) -> OptimizerState | None:
    state = attached_optimizer_state(network)
    if state is not None:
        return state
    path = LOADED.path_of(network)  # picked with Load Hypernetwork?
    if path is None:
        return None
    try:
        state = read_optimizer_sidecar(path)
    except HypernetworkError as exc:
        logger.warning("optimizer state not resumed: %s", exc)
        return None
    if state is not None:
        logger.info("resuming optimizer state from %s.optim", path)
    return state
