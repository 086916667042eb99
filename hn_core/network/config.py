"""What a hypernetwork looks like (config) and where it came from (info).

Field names and defaults are A1111's, so a file's metadata maps onto these one to one.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .activations import ACTIVATIONS, normalize_activation_name

WEIGHT_INITIALIZATIONS = ("Normal", "XavierUniform", "XavierNormal", "KaimingUniform", "KaimingNormal")

# A1111's dropout probability for hidden layers when only `use_dropout` is stored.
DEFAULT_DROPOUT_P = 0.3


def derive_dropout_structure(layer_structure, use_dropout: bool, last_layer_dropout: bool) -> tuple[float, ...]:
    """A1111's rule for files that carry `use_dropout` but no explicit `dropout_structure`."""
    n = len(layer_structure)
    if not use_dropout:
        return (0,) * n
    hidden = [DEFAULT_DROPOUT_P] * (n - 3)
    last_hidden = DEFAULT_DROPOUT_P if last_layer_dropout else 0
    return tuple([0, *hidden, last_hidden, 0])


@dataclass(frozen=True)
class HypernetworkConfig:
    """The structure of every MLP in a hypernetwork (the same for all dims)."""

    layer_structure: tuple[float, ...] = (1, 2, 1)
    activation_func: str = "linear"
    is_layer_norm: bool = False
    weight_initialization: str = "Normal"
    use_dropout: bool = False
    dropout_structure: tuple[float, ...] | None = None
    activate_output: bool = True
    last_layer_dropout: bool = False

    def __post_init__(self):
        # Normalise so that equal networks compare equal whatever form the file used.
        set_ = object.__setattr__
        set_(self, "layer_structure", tuple(self.layer_structure))
        set_(self, "activation_func", normalize_activation_name(self.activation_func))
        if self.dropout_structure is None:
            set_(self, "dropout_structure",
                 derive_dropout_structure(self.layer_structure, self.use_dropout, self.last_layer_dropout))
        else:
            set_(self, "dropout_structure", tuple(self.dropout_structure))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent field."""
        for name in ("is_layer_norm", "use_dropout", "activate_output", "last_layer_dropout"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        ls = self.layer_structure
        if len(ls) < 2:
            raise ValueError(f"layer_structure {list(ls)} needs at least two entries")
        for m in ls:
            if isinstance(m, bool) or not isinstance(m, (int, float)) or not math.isfinite(m) or m <= 0:
                raise ValueError(f"layer_structure {list(ls)} must hold positive numbers")
        if ls[0] != 1 or ls[-1] != 1:
            raise ValueError(f"layer_structure {list(ls)} must start and end with 1")
        if self.activation_func not in ACTIVATIONS:
            raise ValueError(f"unknown activation function {self.activation_func!r}")
        if self.weight_initialization not in WEIGHT_INITIALIZATIONS:
            raise ValueError(f"unknown weight_initialization {self.weight_initialization!r}")
        ds = self.dropout_structure
        # A1111 reads entries 1 .. len(layer_structure)-1 (the entry after each Linear) and
        # derives a list one longer than layer_structure for [1, 1]; extra entries are unused.
        if len(ds) < len(ls):
            raise ValueError(f"dropout_structure {list(ds)} is shorter than layer_structure {list(ls)}")
        for p in ds:
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not (0 <= p < 1):
                raise ValueError(f"dropout_structure {list(ds)} must hold probabilities in [0, 1)")

    def dropout_after(self, step: int) -> float:
        """Dropout probability after Linear number `step` (0-based)."""
        return self.dropout_structure[step + 1]

    def hidden_widths(self, dim: int) -> list[int]:
        """Widths of every layer for one dim, computed exactly as A1111 does (int truncation)."""
        return [int(dim * m) for m in self.layer_structure]

    def replace(self, **changes) -> "HypernetworkConfig":
        return dataclasses.replace(self, **changes)


@dataclass
class HypernetworkInfo:
    """Provenance and free text stored beside the weights; never changes the math."""

    name: str | None = None
    step: int = 0
    sd_checkpoint: str | None = None
    sd_checkpoint_name: str | None = None
    optional_info: str | None = None
    # Unknown metadata keys found in a file, kept so that re-saving loses nothing.
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.step, bool) or not isinstance(self.step, int) or self.step < 0:
            raise ValueError(f"step must be a non-negative integer, got {self.step!r}")
        for name in ("name", "sd_checkpoint", "sd_checkpoint_name", "optional_info"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be text, got {value!r}")
        if not isinstance(self.extra, dict):
            raise ValueError(f"extra metadata must be a mapping, got {self.extra!r}")
