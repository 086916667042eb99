"""The attention patch: rewrites key/value inputs before ComfyUI's to_k / to_v projections.

It follows ComfyUI's attn1/attn2 patch protocol, ``fn(q, k, v, extra_options) -> (q, k, v)``,
without importing ComfyUI: the host calls it and moves it with ``to(device)``.
"""
from __future__ import annotations

import math

import torch

from .network import Hypernetwork


class HypernetworkPatch:
    """Apply one hypernetwork at a fixed strength. Several patches chain in the order added."""

    def __init__(self, network: Hypernetwork, strength: float = 1.0):
        if not math.isfinite(strength):
            raise ValueError(f"strength must be a finite number, got {strength}")
        self.network = network
        self.strength = float(strength)

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict):
        if self.strength == 0.0 or not self.network.has_dim(k.shape[-1]):
            return q, k, v
        k, v = self.network.transform(k, v, self.strength)
        return q, k, v

    def to(self, device_or_dtype):
        # Weights stay fp32 masters; only the device follows the model.
        if isinstance(device_or_dtype, torch.dtype):
            return self
        self.network.to(device_or_dtype)
        return self

    def models(self) -> list:
        return []
