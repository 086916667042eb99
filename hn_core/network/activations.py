"""Activation names A1111 accepts, mapped to torch modules.

A1111 starts from a fixed table (where 'swish' historically means Hardswish) and then adds
every class defined in ``torch.nn.modules.activation`` under its lower-cased name. We build
the same table so that every file A1111 can read, we can read.
"""
from __future__ import annotations

import inspect

import torch

# Activations whose module changes the feature width or cannot be built without arguments:
# A1111 lists them too, but cannot run a hypernetwork that uses them.
_UNUSABLE = {"glu", "multiheadattention", "threshold"}


def _build_table() -> dict[str, type[torch.nn.Module]]:
    table: dict[str, type[torch.nn.Module]] = {
        "linear": torch.nn.Identity,
        "relu": torch.nn.ReLU,
        "leakyrelu": torch.nn.LeakyReLU,
        "elu": torch.nn.ELU,
        "swish": torch.nn.Hardswish,
        "tanh": torch.nn.Tanh,
        "sigmoid": torch.nn.Sigmoid,
    }
    module = torch.nn.modules.activation
    for class_name, cls in inspect.getmembers(module, inspect.isclass):
        if cls.__module__ == module.__name__ and class_name.lower() not in _UNUSABLE:
            table[class_name.lower()] = cls
    return table


ACTIVATIONS: dict[str, type[torch.nn.Module]] = _build_table()


def normalize_activation_name(name: object) -> str:
    """A1111 treats a missing or None activation as 'linear' (no activation)."""
    if name is None:
        return "linear"
    if not isinstance(name, str):
        raise ValueError(f"activation_func must be a string, got {type(name).__name__}")
    return name


def is_linear(name: str) -> bool:
    return name == "linear"


def make_activation(name: str) -> torch.nn.Module:
    try:
        cls = ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation function {name!r}") from None
    return cls()
