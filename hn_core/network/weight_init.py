"""Initial weights for a new hypernetwork, following A1111's `weight_initialization` names."""
from __future__ import annotations

import torch
from torch.nn import init


def initialize_module(sequential: torch.nn.Sequential, weight_initialization: str, activation_func: str,
                      generator: torch.Generator | None = None) -> None:
    """Initialise Linear and LayerNorm layers in place.

    LayerNorm always gets N(0, 0.01) like A1111, so a fresh network with layer norm starts
    close to the identity (its output is near zero, and the block is residual).
    """
    nonlinearity = "leaky_relu" if activation_func == "leakyrelu" else "relu"
    for layer in sequential:
        if not isinstance(layer, (torch.nn.Linear, torch.nn.LayerNorm)):
            continue
        weight, bias = layer.weight.data, layer.bias.data
        if weight_initialization == "Normal" or isinstance(layer, torch.nn.LayerNorm):
            init.normal_(weight, mean=0.0, std=0.01, generator=generator)
        elif weight_initialization == "XavierUniform":
            init.xavier_uniform_(weight, generator=generator)
        elif weight_initialization == "XavierNormal":
            init.xavier_normal_(weight, generator=generator)
        elif weight_initialization == "KaimingUniform":
            init.kaiming_uniform_(weight, nonlinearity=nonlinearity, generator=generator)
        elif weight_initialization == "KaimingNormal":
            init.kaiming_normal_(weight, nonlinearity=nonlinearity, generator=generator)
        else:
            raise ValueError(f"unknown weight_initialization {weight_initialization!r}")
        init.zeros_(bias)
