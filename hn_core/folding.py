"""Folding a linear hypernetwork into the projection that follows it.

A hypernetwork without activation or layer norm is an affine map, MLP(x) = A x + c, so
``to_k(x + s*MLP(x)) = W (I + s A) x + s W c``: one matrix product with a fused weight
gives exactly the patched result at no run-time cost. Dropout never acts at inference.
"""
from __future__ import annotations

import torch

from .network import Hypernetwork, HypernetworkModule


# Folding reorders floating-point work. When a hypernetwork changes its input by more than
# this (RMS singular value of s*A), attention logits grow so large that softmax amplifies
# that reordering beyond 1e-5; such networks keep the exact (unfolded) path.
MAX_FOLD_PERTURBATION = 0.5


def is_foldable(network: Hypernetwork, max_strength: float) -> bool:
    """Linear (no activation, no layer norm) and a perturbation of the identity at `max_strength`."""
    c = network.config
    if c.activation_func != "linear" or c.is_layer_norm:
        return False
    for dim in network.dims:
        for module in network.pair(dim):
            matrix, _offset = affine_form(module)
            rms_gain = abs(max_strength) * float(matrix.norm()) / dim ** 0.5
            if rms_gain > MAX_FOLD_PERTURBATION:
                return False
    return True


def affine_form(module: HypernetworkModule) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, c) in float64 with module(x) == x @ A.T + c, for a module of Linear/Dropout layers."""
    width = module.dim
    matrix = torch.eye(width, dtype=torch.float64)
    offset = torch.zeros(width, dtype=torch.float64)
    for layer in module.linear:
        if isinstance(layer, torch.nn.Linear):
            weight = layer.weight.detach().to("cpu", torch.float64)
            bias = layer.bias.detach().to("cpu", torch.float64)
            matrix, offset = weight @ matrix, weight @ offset + bias
        elif not isinstance(layer, (torch.nn.Dropout, torch.nn.Identity)):
            raise ValueError(f"layer {type(layer).__name__} is not affine; this hypernetwork cannot be folded")
    return matrix, offset


def residual_affine(module: HypernetworkModule, strength: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, b) in float64 with x + strength*module(x) == x @ M.T + b."""
    matrix, offset = affine_form(module)
    full = torch.eye(module.dim, dtype=torch.float64) + strength * matrix
    return full, strength * offset


def compose_affine(first: tuple[torch.Tensor, torch.Tensor],
                   then: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The affine map `then(first(x))`."""
    (m1, b1), (m2, b2) = first, then
    m1, b1, m2, b2 = (t.to(torch.float64) for t in (m1, b1, m2, b2))
    return m2 @ m1, m2 @ b1 + b2


def fuse_projection(weight: torch.Tensor, bias: torch.Tensor | None,
                    affine: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``x -> F.linear(M x + b, weight, bias)``, in fp32 on the weight's device.

    Computed as W + W (M - I) so that W itself passes through unrounded and only the
    (small) hypernetwork term carries the product's rounding.
    """
    delta, offset = residual_delta(affine, weight.device)
    return _fuse(weight, bias, delta, offset)


def residual_delta(affine: tuple[torch.Tensor, torch.Tensor],
                   device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """(M - I, b) of the affine map ``x -> M x + b`` in fp32 on ``device``."""
    matrix, offset = affine
    delta = matrix - torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
    return delta.to(device, torch.float32), offset.to(device, torch.float32)


def linear_through_affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                          delta: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``F.linear(x + x @ delta.T + offset, weight, bias)`` for a weight made afresh for this call.

    Used where the host hands a layer its weight per call (patches applied on the fly, weights
    streamed from RAM), so a fused weight cannot be kept. Of the two equal forms it computes the
    cheaper one: map the input (tokens x in x in) when there are fewer tokens than outputs (the
    77-token text context), else fuse the weight (out x in x in). ``delta``/``offset``: fp32 on
    x's device (``residual_delta``); the result is in x's dtype.
    """
    tokens = x.numel() // max(x.shape[-1], 1)
    if tokens < weight.shape[0]:
        x32 = x.to(torch.float32)
        mapped = (x32 + torch.nn.functional.linear(x32, delta, offset)).to(x.dtype)
        return torch.nn.functional.linear(mapped, weight.to(x.dtype), None if bias is None else bias.to(x.dtype))
    fused_weight, fused_bias = _fuse(weight, bias, delta, offset)
    return torch.nn.functional.linear(x, fused_weight.to(x.dtype), fused_bias.to(x.dtype))


def _fuse(weight, bias, delta, offset) -> tuple[torch.Tensor, torch.Tensor]:
    w32 = weight.detach().to(torch.float32)
    fused_weight = w32 + w32 @ delta
    fused_bias = w32 @ offset
    if bias is not None:
        fused_bias = fused_bias + bias.detach().to(torch.float32)
    return fused_weight, fused_bias
