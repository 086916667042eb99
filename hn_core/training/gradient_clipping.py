"""Gradient clipping as A1111 offers it: off, by value, or by total norm."""
from __future__ import annotations

from typing import Iterable

import torch

CLIP_MODES = ("off", "value", "norm")


def clip_gradients(parameters: Iterable[torch.Tensor], mode: str, limit: float) -> None:
    """Clip the (already unscaled) gradients in place."""
    if mode == "off":
        return
    parameters = [p for p in parameters if p.grad is not None]
    if mode == "value":
        torch.nn.utils.clip_grad_value_(parameters, limit)
    elif mode == "norm":
        torch.nn.utils.clip_grad_norm_(parameters, limit)
    else:
        raise ValueError(f"unknown gradient clipping mode {mode!r} (choose one of {', '.join(CLIP_MODES)})")
