"""Weighted mean of the parameters of networks with the same structure, per dim and per layer.

Only what changes the network's output has to agree: layer structure, activation, layer norm,
and activate_output (where there is an activation). Dropout and the weight initialisation act
only in training; the result takes them from the first input. Layers are paired by position
among the layers that carry parameters (Linear, LayerNorm, PReLU), so a different dropout
layout, which shifts the state-dict indices, does not stop a merge.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch

from ..network.activations import is_linear
from ..network.hypernetwork import HypernetworkModule

# Relative size under which the weights of the inputs having a dim count as summing to zero.
ZERO_TOTAL = 1e-9


def weighted_sum(inputs: Sequence, on_dim) -> tuple:
    """(config, {dim: (key_state, value_state)}) of the weighted mean of `inputs` (MergeInput);
    `on_dim(done, total)` after each dim."""
    first = inputs[0]
    for item in inputs[1:]:
        _check_same_structure(first, item)
    config = first.network.config
    dims = sorted({dim for item in inputs for dim in item.network.dims})
    pair_states = {}
    for dim in dims:
        having = [item for item in inputs if item.network.has_dim(dim)]
        shares = _shares(having, dim)
        # The result's module for this dim is built from the first input's config, so its
        # state-dict keys come from a template module of that layout (meta: no memory).
        with torch.device("meta"):
            template = HypernetworkModule(dim, config)
        pair_states[dim] = tuple(
            _mean_state(template, [item.network.pair(dim)[role] for item in having], shares)
            for role in (0, 1))
        on_dim(len(pair_states), len(dims))
    return config, pair_states


def _shares(having: Sequence, dim: int) -> list[float]:
    """The weights of the inputs that have `dim`, divided by their sum: a dim that only some
    inputs have is their weighted mean (one input alone: that input's MLP unchanged)."""
    total = sum(item.weight for item in having)
    scale = max(abs(item.weight) for item in having)
    if scale == 0 or abs(total) <= ZERO_TOTAL * scale:
        names = ", ".join(f"{item.label} ({item.weight:g})" for item in having)
        raise ValueError(f"the weights of the networks that have dim {dim} sum to zero ({names}); "
                         "a weighted sum divides by that sum")
    return [item.weight / total for item in having]


def _mean_state(template: HypernetworkModule, modules: Sequence[HypernetworkModule],
                shares: Sequence[float]) -> OrderedDict:
    targets = _parametrised_layers(template)
    sources = [_parametrised_layers(module) for module in modules]
    state = OrderedDict()
    for position, (index, layer) in enumerate(targets):
        for name, _ in layer.named_parameters(recurse=False):
            total = torch.zeros((), dtype=torch.float64)
            for share, layers in zip(shares, sources):
                source = getattr(layers[position][1], name).detach().to("cpu", torch.float64)
                total = total + share * source
            state[f"linear.{index}.{name}"] = total.to(torch.float32).contiguous()
    return state


def _parametrised_layers(module: HypernetworkModule) -> list[tuple[int, torch.nn.Module]]:
    return [(index, layer) for index, layer in enumerate(module.linear)
            if next(layer.parameters(recurse=False), None) is not None]


def _check_same_structure(first, other) -> None:
    a, b = first.network.config, other.network.config
    fields = ["layer_structure", "activation_func", "is_layer_norm"]
    if not is_linear(a.activation_func):
        fields.append("activate_output")  # without an activation it changes nothing
    for field in fields:
        mine, theirs = getattr(other.network.config, field), getattr(a, field)
        if field == "layer_structure":
            mine, theirs = list(mine), list(theirs)
        if mine != theirs:
            hint = ""
            if all(is_linear(c.activation_func) and not c.is_layer_norm for c in (a, b)):
                hint = "; both are linear, so 'exact stack' can combine them"
            raise ValueError(f"{other.label} has {field} {mine!r} but {first.label} has {theirs!r}: "
                             f"a weighted sum needs networks of the same structure{hint}")
