"""The single linear network equal to several linear networks applied one after another.

A linear network (no activation, no layer norm) is an affine map, so the chain
``x_i = x_{i-1} + s_i * f_i(x_{i-1})`` is one too: ``x_n = x + F(x)`` with
``F(x) = sum_i s_i * f_i(x_{i-1})``, where each ``x_{i-1}`` is itself affine in x. F is written in
whichever of two exact forms has fewer parameters:

* multiplied out, layer_structure [1, 1]: one Linear(dim, dim) holding ``M - I`` and ``b`` of the
  chain's map ``x -> M x + b``;
* a wider hidden layer, [1, h, 1]: one branch per input side by side. Each input is split at its
  narrowest layer into two affine halves; branch i's first half reads ``x_{i-1}`` (the map of the
  inputs before it folded into its weights) and its second half is scaled by s_i. Smaller only
  for bottleneck networks (total hidden width under about half the dim).

All products are taken in float64; only the final weights are rounded to float32.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from types import SimpleNamespace
from typing import Sequence

import torch

from ..network.activations import is_linear
from ..network.config import HypernetworkConfig
from ..inference.folding import affine_form, compose_affine, residual_affine
from ..network.hypernetwork import HypernetworkModule

SINGLE_LAYER = (1, 1)


def exact_stack(inputs: Sequence, on_dim) -> tuple:
    """(config, {dim: (key_state, value_state)}) of the chain of `inputs` (MergeInput) at their weights;
    `on_dim(done, total)` after each dim."""
    for item in inputs:
        _check_linear(item)
    dims = sorted({dim for item in inputs for dim in item.network.dims})
    hidden = sum(_narrowest_multiplier(item.network.config.layer_structure) for item in inputs)
    wide = _wide_multiplier(inputs, dims, hidden)
    if _wide_parameters(dims, wide) < _single_parameters(dims):
        layer_structure = (1, wide, 1)
        build = _wide_state
    else:
        layer_structure = SINGLE_LAYER
        build = _single_state
    base = inputs[0].network.config
    config = HypernetworkConfig(layer_structure=layer_structure, activation_func="linear", is_layer_norm=False,
                                weight_initialization=base.weight_initialization, use_dropout=False,
                                activate_output=True, last_layer_dropout=False)
    pair_states = {}
    for dim in dims:
        chain = [(item.network.pair(dim), float(item.weight)) for item in inputs if item.network.has_dim(dim)]
        width = config.hidden_widths(dim)[1] if layer_structure != SINGLE_LAYER else dim
        pair_states[dim] = tuple(build([(pair[role], s) for pair, s in chain], dim, width) for role in (0, 1))
        on_dim(len(pair_states), len(dims))
    return config, pair_states


def _check_linear(item) -> None:
    config = item.network.config
    if not is_linear(config.activation_func):
        reason = f"activation {config.activation_func!r}"
    elif config.is_layer_norm:
        reason = "layer norm"
    else:
        return
    raise ValueError(f"{item.label} uses {reason}: an exact stack exists only for linear networks (no activation, "
                     "no layer norm). Use 'weighted sum' for networks of the same structure, or chain "
                     "Apply Hypernetwork nodes to stack them as they are")


# --- multiplied out: [1, 1] --------------------------------------------------------------------------


def _single_state(chain, dim: int, _width: int) -> OrderedDict:
    matrix, offset = _chain_affine(chain, dim)
    delta = matrix - torch.eye(dim, dtype=torch.float64)
    return OrderedDict([("linear.0.weight", _fp32(delta)), ("linear.0.bias", _fp32(offset))])


def _chain_affine(chain, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, b) of x -> x_n: the residual maps of `chain` composed in order (starting from the
    first map, not the identity: a dim x dim product less, seconds at SDXL's 2048 on a CPU)."""
    total = None
    for module, strength in chain:
        step = residual_affine(module, strength)
        total = step if total is None else compose_affine(total, step)
    return total


def _single_parameters(dims) -> int:
    return sum(dim * dim + dim for dim in dims)


# --- a wider hidden layer: [1, h, 1] ----------------------------------------------------------------


def _wide_state(chain, dim: int, width: int) -> OrderedDict:
    first_weight = torch.zeros(width, dim, dtype=torch.float64)
    first_bias = torch.zeros(width, dtype=torch.float64)
    second_weight = torch.zeros(dim, width, dtype=torch.float64)
    second_bias = torch.zeros(dim, dtype=torch.float64)
    before = (torch.eye(dim, dtype=torch.float64), torch.zeros(dim, dtype=torch.float64))  # x -> x_{i-1}
    row = 0
    for module, strength in chain:
        (a, alpha), (g, gamma) = _split_at_narrowest(module)
        a, alpha = compose_affine(before, (a, alpha))  # the branch reads x_{i-1}
        rows = slice(row, row + a.shape[0])
        first_weight[rows], first_bias[rows] = a, alpha
        second_weight[:, rows] = strength * g
        second_bias += strength * gamma
        row += a.shape[0]
        before = compose_affine(before, residual_affine(module, strength))
    # Rows past `row` stay zero: padding where int(dim * h) exceeds the branches' total width.
    return OrderedDict([("linear.0.weight", _fp32(first_weight)), ("linear.0.bias", _fp32(first_bias)),
                        ("linear.1.weight", _fp32(second_weight)), ("linear.1.bias", _fp32(second_bias))])


def _split_at_narrowest(module: HypernetworkModule):
    """Two affine maps (each (matrix, offset), float64) whose composition is the module, meeting
    at its narrowest layer (possibly an end: then one of them is the identity)."""
    structure = module.config.layer_structure
    cut = min(range(len(structure)), key=lambda i: structure[i])  # the first narrowest: fewest layers before
    linears = [layer for layer in module.linear if isinstance(layer, torch.nn.Linear)]
    widths = module.config.hidden_widths(module.dim)
    # affine_form reads `.dim` (input width) and `.linear` (the layers); a slice of the layers
    # keeps their order, and the Dropouts between them act as the identity at inference.
    halves = (SimpleNamespace(dim=widths[0], linear=linears[:cut]),
              SimpleNamespace(dim=widths[cut], linear=linears[cut:]))
    return tuple(affine_form(half) for half in halves)


def _narrowest_multiplier(layer_structure) -> float:
    return min(layer_structure)


def _wide_multiplier(inputs, dims, hidden: float) -> float:
    """The smallest multiplier h near `hidden` with int(dim * h) at least the branches' total
    width at every dim (int() of a float sum can fall one short of the sum of int()s)."""
    need = {dim: sum(_branch_width(item, dim) for item in inputs if item.network.has_dim(dim)) for dim in dims}
    multiplier = max(hidden, max(need[dim] / dim for dim in dims))
    while any(int(dim * multiplier) < need[dim] for dim in dims):
        multiplier = math.nextafter(multiplier, math.inf)
    return multiplier


def _branch_width(item, dim: int) -> int:
    return int(dim * _narrowest_multiplier(item.network.config.layer_structure))


def _wide_parameters(dims, multiplier: float) -> int:
    return sum(2 * int(dim * multiplier) * dim + int(dim * multiplier) + dim for dim in dims)


def _fp32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(torch.float32).contiguous()
