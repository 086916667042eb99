"""The text context through the hypernetwork once per model call, dropout still drawn per layer.

Every cross-attention layer of a model call receives the same context tensor. Without active
dropout its k/v MLPs give the same result in every layer, so it is computed once and shared.
With dropout each layer must draw its own masks, as A1111 does (it runs the MLPs in every layer,
the key MLP first, then the value MLP): the layers before the first dropout, which draw nothing,
run once, and the rest runs per layer, keys then values. The random numbers drawn, and so a
seed's result, are those of running the whole MLPs in every layer.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..network.hypernetwork import Hypernetwork

Pair = tuple[torch.Tensor, torch.Tensor]


def first_active_dropout(layers: torch.nn.Sequential) -> int | None:
    """Index of the first Dropout that is on (training mode, p > 0), or None."""
    for index, layer in enumerate(layers):
        if isinstance(layer, torch.nn.Dropout) and layer.training and layer.p > 0:
            return index
    return None


class SharedContext:
    """One model call's text context and what the network makes of it, shared by its layers."""

    def __init__(self, network: Hypernetwork, context: torch.Tensor, transform: Callable[[torch.Tensor, torch.Tensor], Pair]):
        self.context = context
        key_module, value_module = network.pair(context.shape[-1])
        split = first_active_dropout(key_module.linear)  # k and v MLPs share one structure
        self._result: Pair | None = None
        self._heads: Pair | None = None
        self._tails: tuple[torch.nn.Module, torch.nn.Module] | None = None
        if split is None:
            self._result = transform(context, context)
            return
        weight = next(key_module.parameters())
        if weight.device != context.device:
            network.to(context.device)  # as Hypernetwork.transform does: follow the activations
        x = context.to(weight.dtype)
        self._heads = (key_module.linear[:split](x), value_module.linear[:split](x))
        self._tails = (key_module.linear[split:], value_module.linear[split:])

    def matches(self, k: torch.Tensor, v: torch.Tensor) -> bool:
        return k is self.context and v is self.context

    def result(self) -> Pair:
        """(k', v') for one layer: the shared result, or this layer's own dropout draws."""
        if self._result is not None:
            return self._result
        context = self.context
        # Hypernetwork.transform's arithmetic, split in two: same dtypes, same order of draws.
        k_delta = self._tails[0](self._heads[0]).to(context.dtype)
        v_delta = self._tails[1](self._heads[1]).to(context.dtype)
        return torch.add(context, k_delta, alpha=1.0), torch.add(context, v_delta, alpha=1.0)
