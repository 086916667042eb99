"""Building the optimizer for a hypernetwork, and resuming its state."""
from __future__ import annotations

import logging

import torch

from ..network.hypernetwork import Hypernetwork
from .resume import OptimizerState, align_optimizer_state

logger = logging.getLogger(__name__)

# torch.optim classes offered (A1111 stores the class name in the .optim sidecar).
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "AdamW": torch.optim.AdamW,
    "Adam": torch.optim.Adam,
    "SGD": torch.optim.SGD,
    "RMSprop": torch.optim.RMSprop,
    "Adagrad": torch.optim.Adagrad,
    "Adamax": torch.optim.Adamax,
    "NAdam": torch.optim.NAdam,
    "RAdam": torch.optim.RAdam,
}


# How the optimizer runs, not what it computes: never taken from a saved state.
_IMPLEMENTATION_FLAGS = ("fused", "foreach", "capturable", "differentiable")


def build_optimizer(name: str, network: Hypernetwork, learning_rate: float, weight_decay: float,
                    resume_from: OptimizerState | None = None) -> torch.optim.Optimizer:
    """A new optimizer over the network's parameters, continuing `resume_from` when it fits.

    State saved by another optimizer, or for another structure, is ignored with a warning (as
    A1111 does). The learning rate and weight decay always come from the current settings.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r} (choose one of {', '.join(OPTIMIZERS)})")
    optimizer = _construct(OPTIMIZERS[name], list(network.parameters()), learning_rate, weight_decay)
    if resume_from is not None:
        implementation = {key: optimizer.defaults[key] for key in _IMPLEMENTATION_FLAGS if key in optimizer.defaults}
        _load_state(optimizer, name, network, resume_from)
        for group in optimizer.param_groups:
            # Saved groups bring their own settings; today's settings and kernels win.
            group.update(implementation, lr=learning_rate, weight_decay=weight_decay)
    return optimizer


def _construct(cls, params, learning_rate: float, weight_decay: float) -> torch.optim.Optimizer:
    # The fused kernels (AdamW, Adam, SGD, Adagrad on CPU and CUDA) do one pass over the weights
    # instead of several: about 4x faster on a CPU. Other optimizers, or other devices, refuse.
    try:
        return cls(params, lr=learning_rate, weight_decay=weight_decay, fused=True)
    except (TypeError, RuntimeError, ValueError):
        return cls(params, lr=learning_rate, weight_decay=weight_decay)


def _load_state(optimizer, name: str, network: Hypernetwork, saved: OptimizerState) -> None:
    if saved.name != name:
        logger.warning("optimizer state saved for %s, not %s: starting %s from scratch", saved.name, name, name)
        return
    aligned = align_optimizer_state(saved.state_dict, network)
    if aligned is None:
        logger.warning("the saved optimizer state does not fit this network's parameters: starting fresh")
        return
    try:
        optimizer.load_state_dict(aligned)
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        logger.warning("could not resume the optimizer state (%s): starting fresh", exc)
        return
    logger.info("resumed %s optimizer state", name)
