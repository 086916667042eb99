"""Spotting a run that diverged: a loss or a weight that is no longer a finite number.

Once that happens every later step only spreads NaN through the network, so the trainer stops
at once, before the update that would write it into the weights (or the snapshot that would
save it).
"""
from __future__ import annotations

from typing import Iterable

import torch


def weights_are_finite(parameters: Iterable[torch.Tensor]) -> bool:
    """True when no parameter holds NaN or ±inf. One device sync for the whole set."""
    peaks = [parameter.detach().abs().amax() for parameter in parameters if parameter.numel()]
    return not peaks or bool(torch.isfinite(torch.stack(peaks)).all())


def divergence_message(step: int, what: str) -> str:
    return (f"training diverged at step {step}: {what}. Nothing from step {step} was kept, and no snapshot "
            "holds it (snapshots saved before it are intact). Lower the learning rate or clip the gradients, "
            "then train again or continue from the last snapshot.")
