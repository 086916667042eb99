"""Folding a linear hypernetwork into the projection that follows it.

A hypernetwork without activation or layer norm is an affine map, MLP(x) = A x + c, so
``to_k(x + s*MLP(x)) = W (I + s A) x + s W c``: one matrix product with a fused weight
gives exactly the patched result at no run-time cost. Dropout never acts at inference.

Every linear network folds, however strongly it changes its input: the fused weight is computed
in float64 and rounded once, so judged against the patched attention computed in float64 the
folded layer is at least as close as the unfolded fp32 one (which rounds the MLP's output before
the projection), and clearly closer for strong networks (tests/inference/test_fold_truth.py).
"""
from __future__ import annotations

import functools

import torch

from ..network.hypernetwork import Hypernetwork, HypernetworkModule


def is_foldable(network: Hypernetwork) -> bool:
    """Whether the network is an affine map: no activation and no layer norm (dropout is inactive).

    Cheap (reads the config only): Apply calls it on every run.
    """
    c = network.config
    return c.activation_func == "linear" and not c.is_layer_norm


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
                    affine: tuple[torch.Tensor, torch.Tensor],
                    dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``x -> F.linear(M x + b, weight, bias)`` in ``dtype``, on the weight's device.

    Computed in float64 and rounded to ``dtype`` once, so the fused weight is the exact product
    to ``dtype``'s precision. Paid once per weight version (not per step): about 90 GFLOP in float64
    for all of SD1.5's to_k/to_v. Where the device has no float64 (Apple MPS), on the CPU.
    """
    device = weight.device
    work = _float64_device(device)
    matrix, offset = affine
    w64 = weight.detach().to(work, torch.float64)
    delta = matrix.to(work, torch.float64) - torch.eye(matrix.shape[0], dtype=torch.float64, device=work)
    fused_weight = w64 + w64 @ delta  # W (I + sA): W passes through exactly, only sWA is a product
    fused_bias = w64 @ offset.to(work, torch.float64)
    if bias is not None:
        fused_bias = fused_bias + bias.detach().to(work, torch.float64)
    return fused_weight.to(device, dtype), fused_bias.to(device, dtype)


@functools.lru_cache(maxsize=None)
def _float64_device(device: torch.device) -> torch.device:
    try:
        torch.zeros(1, dtype=torch.float64, device=device)
    except (RuntimeError, TypeError):  # MPS and some other backends have no float64
        return torch.device("cpu")
    return device


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
    x's device (``residual_delta``); the result is in x's dtype. In fp32, not float64 as
    ``fuse_projection``: this runs at every call, where float64 would be slow on most GPUs.
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
