"""A new network's structure from the text a user types (dims, layer structure, dropout)."""
from __future__ import annotations

from typing import Collection

from ..network.config import HypernetworkConfig

DROPOUT_CHOICES = ("off", "hidden layers", "hidden + last layer")


def parse_dims(text: str, model_dims: Collection[int]) -> tuple[int, ...]:
    """'auto' = every width the model's attention layers use; else a list such as '768, 320, 640, 1280'."""
    if not model_dims:
        raise ValueError("this model has no attention layers a hypernetwork can patch")
    if str(text).strip().lower() in ("", "auto"):
        return tuple(sorted(model_dims))
    dims = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or int(part) <= 0:
            raise ValueError(f"dims: {part!r} is not a positive whole number (write e.g. '768, 320, 640, 1280' or 'auto')")
        dims.append(int(part))
    if not dims:
        raise ValueError("dims: no width given (write e.g. '768, 320, 640, 1280' or 'auto')")
    unused = sorted(set(dims) - set(model_dims))
    if unused:
        raise ValueError(f"dims {', '.join(map(str, unused))} are not used by this model: its attention layers "
                         f"use {', '.join(map(str, sorted(model_dims)))} (or write 'auto')")
    return tuple(sorted(set(dims)))


def parse_number_list(text: str, what: str) -> tuple[float, ...]:
    values = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            values.append(float(part))
        except ValueError:
            raise ValueError(f"{what}: {part!r} is not a number") from None
    return tuple(int(v) if v.is_integer() else v for v in values)


def build_config(layer_structure: str, activation: str, weight_init: str, layer_norm: bool,
                 dropout: str, dropout_structure: str, activate_output: bool) -> HypernetworkConfig:
    """The config for a new network; `dropout_structure`, when given, overrides the `dropout` choice."""
    structure = parse_number_list(layer_structure, "layer structure")
    explicit = parse_number_list(dropout_structure, "dropout structure") if str(dropout_structure).strip() else None
    if dropout not in DROPOUT_CHOICES:
        raise ValueError(f"dropout must be one of {', '.join(DROPOUT_CHOICES)}, got {dropout!r}")
    if explicit is not None:
        if len(explicit) != len(structure):
            raise ValueError(f"dropout structure {list(explicit)} needs one entry per layer structure entry "
                             f"({len(structure)})")
        if explicit[0] != 0 or explicit[-1] != 0:
            raise ValueError(f"dropout structure {list(explicit)} must start and end with 0")
        # A1111 writes last_layer_dropout from the structure: dropout after the last hidden layer.
        use_dropout, last_layer_dropout = any(p > 0 for p in explicit), len(explicit) > 1 and explicit[-2] != 0
    else:
        use_dropout, last_layer_dropout = dropout != "off", dropout == "hidden + last layer"
    config = HypernetworkConfig(
        layer_structure=structure, activation_func=activation, is_layer_norm=bool(layer_norm),
        weight_initialization=weight_init, use_dropout=use_dropout, dropout_structure=explicit,
        activate_output=bool(activate_output), last_layer_dropout=last_layer_dropout)
    if explicit is None and use_dropout and not any(p > 0 for p in config.dropout_structure):
        # A1111's rule drops out only after the middle layers, and after the last hidden one on request.
        raise ValueError(f"dropout {dropout!r} adds no dropout to layer structure {list(structure)}; choose "
                         "'hidden + last layer', a longer structure, or give a dropout structure")
    return config

