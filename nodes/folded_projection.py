"""A to_k / to_v projection with linear hypernetworks folded into its weight (the speed path).

The stand-in is the original ComfyUI Linear (same class, same parameters under the same names),
so ModelPatcher still finds and patches `...to_k.weight` (LoRA etc.) and casts it as usual;
only forward differs: one F.linear with W (I + sA) instead of a hypernetwork MLP before W.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import comfy.ops

from ..hn_core.folding import compose_affine, fuse_projection


@dataclass(frozen=True)
class FoldRecord:
    """One Apply node's folded hypernetwork, in graph order (`sequence`)."""

    sequence: int
    network: object
    strength: float
    profile: object


class FoldedProjectionMixin:
    """Forward of a Linear whose input first goes through the folded hypernetworks."""

    def forward(self, x):
        run_every_op = getattr(comfy.ops, "run_every_op", None)
        if run_every_op is not None:
            run_every_op()
        if getattr(self, "weight_function", None) or getattr(self, "bias_function", None):
            # Low-VRAM patches are applied to a fresh weight on every call: fuse on every call too.
            weight, bias, offload = comfy.ops.cast_bias_weight(self, x, offloadable=True)
            fused_weight, fused_bias = fuse_projection(weight, bias, self.hn_affine)
            out = F.linear(x, fused_weight.to(x.dtype), fused_bias.to(x.dtype))
            comfy.ops.uncast_bias_weight(self, weight, bias, offload)
            return out
        fused_weight, fused_bias = self._fused_for(x)
        return F.linear(x, fused_weight, fused_bias)

    def _fused_for(self, x):
        # Cached per weight version and activation dtype/device: the fuse costs a matrix product,
        # paid once per sampling run, not per step. A patched weight (LoRA) is a new Parameter.
        weight, bias = self.weight, self.bias
        key = (id(weight), weight._version, None if bias is None else (id(bias), bias._version),
               x.dtype, x.device, torch.is_inference_mode_enabled())
        cached = self.__dict__.get("_hn_fused")
        if cached is None or cached[0] != key:
            fused_weight, fused_bias = fuse_projection(
                weight.to(x.device), None if bias is None else bias.to(x.device), self.hn_affine)
            cached = (key, fused_weight.to(x.dtype), fused_bias.to(x.dtype))
            self.__dict__["_hn_fused"] = cached
        return cached[1], cached[2]


def make_folded(original: torch.nn.Module, records: list[FoldRecord], affines: list):
    """A stand-in for `original` with the affine maps of `records` folded, applied in order."""
    cls = _folded_class(type(original))
    folded = copy.copy(original)
    folded.__class__ = cls
    # Own parameter/buffer dicts: ModelPatcher swaps parameters on the stand-in, not on the original.
    folded._parameters = dict(original._parameters)
    folded._buffers = dict(original._buffers)
    folded._modules = dict(original._modules)
    folded.hn_original = original
    folded.hn_records = list(records)
    folded.hn_affines = list(affines)
    affine = affines[0]
    for step in affines[1:]:
        affine = compose_affine(affine, step)
    folded.hn_affine = affine
    folded.__dict__.pop("_hn_fused", None)
    return folded


_CLASSES: dict[type, type] = {}


def _folded_class(base: type) -> type:
    if base not in _CLASSES:
        _CLASSES[base] = type(f"HypernetworkFolded{base.__name__}", (FoldedProjectionMixin, base), {})
    return _CLASSES[base]
