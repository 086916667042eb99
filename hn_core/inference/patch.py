"""The attention patch: rewrites key/value inputs before ComfyUI's to_k / to_v projections.

It follows ComfyUI's attn1/attn2 patch protocol, ``fn(q, k, v, extra_options) -> (q, k, v)``,
without importing ComfyUI. ``extra_options`` supplies ``block`` (for per-block weights) and
``sigmas`` (for the active step range).
"""
from __future__ import annotations

import copy
import math

import torch

from .context_cache import ContextCache
from ..network.hypernetwork import Hypernetwork
from .strength_profile import StrengthProfile

ATTENTION_KINDS = ("attn1", "attn2")


class HypernetworkPatch:
    """One hypernetwork on one attention kind. Several patches chain in the order added.

    `sigma_range` is ``(sigma_start, sigma_end)``: the patch acts on batch rows whose sigma
    satisfies ``sigma_end <= sigma <= sigma_start`` (ComfyUI's timestep-range rule); None = always.
    `companion_models` are returned by ``models()`` so that the host loads and counts the
    network's memory along with the model (the ComfyUI adapter wraps the network for that).
    """

    def __init__(self, network: Hypernetwork, strength: float = 1.0, attention: str = "attn1",
                 profile: StrengthProfile | None = None, sigma_range: tuple[float, float] | None = None,
                 companion_models: list | tuple = ()):
        if not math.isfinite(strength):
            raise ValueError(f"strength must be a finite number, got {strength}")
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
        self.network = network
        self.strength = float(strength)
        self.attention = attention
        self.profile = profile if profile is not None else StrengthProfile()
        self.sigma_range = sigma_range
        self.companion_models = list(companion_models)
        # Cross-attention gets the same text context in every layer and step: compute it once.
        self._context_cache = ContextCache() if attention == "attn2" else None

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict):
        if not self.network.has_dim(k.shape[-1]):
            return q, k, v
        strength = self.strength * self.profile.weight(self.attention, extra_options.get("block"))
        if strength == 0.0:
            return q, k, v
        rows = self._active_rows(extra_options.get("sigmas"), k.shape[0])
        if rows is False:
            return q, k, v
        if self._context_cache is not None:
            new_k, new_v = self._context_cache.get(k, v, strength, lambda: self.network.transform(k, v, strength))
        else:
            new_k, new_v = self.network.transform(k, v, strength)
        if rows is not True:  # some rows of the batch are outside the range: keep them untouched
            mask = rows.to(k.device).view(-1, *([1] * (k.dim() - 1)))
            new_k, new_v = torch.where(mask, new_k, k), torch.where(mask, new_v, v)
        return q, new_k, new_v

    def _active_rows(self, sigmas, batch: int):
        """True (all rows), False (none) or a bool tensor per row."""
        if self.sigma_range is None or sigmas is None:
            return True
        start, end = self.sigma_range
        sigmas = sigmas.detach().float().flatten()
        active = (sigmas <= start) & (sigmas >= end)
        if bool(active.all()):
            return True
        if not bool(active.any()):
            return False
        if batch % active.numel() != 0:
            return bool(active[0])
        return active.repeat_interleave(batch // active.numel())

    def to(self, device_or_dtype):
        # ComfyUI calls to(device) and then to(model dtype); weights stay fp32 masters.
        if not isinstance(device_or_dtype, torch.dtype):
            self.network.to(device_or_dtype)
        return self

    def models(self) -> list:
        return list(self.companion_models)

    def __deepcopy__(self, memo):
        # ComfyUI 0.3.x's ModelPatcher.clone() deep-copies model options (0.33 shares patch
        # objects between clones instead, so nothing here may depend on which clone calls it).
        # The weights are read-only at inference: clones share them instead of duplicating the
        # network in memory; each copy starts with an empty context cache.
        clone = copy.copy(self)
        clone.companion_models = list(self.companion_models)
        clone._context_cache = ContextCache() if self.attention == "attn2" else None
        return clone
