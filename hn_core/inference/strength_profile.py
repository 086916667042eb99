"""How strongly a hypernetwork acts where and when: per attention kind, per block, per step range.

The HYPERNETWORK value that flows between the pack's nodes is a `ScheduledHypernetwork`: the
network plus its profile. Loading gives the neutral profile; HypernetworkStrength replaces it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ..network.hypernetwork import Hypernetwork

BLOCK_GROUPS = ("input", "middle", "output")


@dataclass(frozen=True)
class StrengthProfile:
    """Multipliers on top of the Apply node's strength; 1.0 everywhere means plain A1111 behaviour.

    `block_weights` overrides the group weight for single blocks, keyed like ComfyUI's
    ``extra_options["block"]``: ``("input", 4)``, ``("middle", 0)``, ``("output", 3)``.
    `start_percent` / `end_percent` are fractions of the sampling schedule, as in ComfyUI's
    ConditioningSetTimestepRange: active while start <= progress <= end.
    """

    attn1: float = 1.0
    attn2: float = 1.0
    input: float = 1.0
    middle: float = 1.0
    output: float = 1.0
    block_weights: tuple[tuple[tuple[str, int], float], ...] = field(default=())
    start_percent: float = 0.0
    end_percent: float = 1.0

    def __post_init__(self):
        for name in ("attn1", "attn2", "input", "middle", "output", "start_percent", "end_percent"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        if not (0.0 <= self.start_percent <= self.end_percent <= 1.0):
            raise ValueError(f"need 0 <= start_percent <= end_percent <= 1, got "
                             f"{self.start_percent} .. {self.end_percent}")
        for (group, _index), weight in self.block_weights:
            if group not in BLOCK_GROUPS:
                raise ValueError(f"unknown block group {group!r} (expected one of {BLOCK_GROUPS})")
            if not math.isfinite(weight):
                raise ValueError(f"block weight must be finite, got {weight}")

    def weight(self, attention: str, block: tuple[str, int] | None) -> float:
        """The multiplier for one attention layer ('attn1' or 'attn2') in `block`."""
        kind = self.attn1 if attention == "attn1" else self.attn2
        if block is None:
            return kind
        for key, value in self.block_weights:
            if key == (block[0], block[1]):
                return kind * value
        return kind * getattr(self, block[0], 1.0)

    @property
    def full_range(self) -> bool:
        return self.start_percent == 0.0 and self.end_percent == 1.0


@dataclass(frozen=True)
class ScheduledHypernetwork:
    """What the HYPERNETWORK socket carries: a network and how strongly it acts."""

    network: Hypernetwork
    profile: StrengthProfile = StrengthProfile()

    def with_profile(self, profile: StrengthProfile) -> "ScheduledHypernetwork":
        return replace(self, profile=profile)


def as_scheduled(value) -> ScheduledHypernetwork:
    """Accept a bare Hypernetwork too (e.g. from a script) and give it the neutral profile."""
    # Checked by shape, not class: the pack may be imported under two module names (as a
    # ComfyUI custom node and as plain `hn_core` in a script), giving two copies of each class.
    if hasattr(value, "network") and hasattr(value, "profile"):
        return value
    if hasattr(value, "transform") and hasattr(value, "dims"):
        return ScheduledHypernetwork(value)
    raise TypeError(f"expected a hypernetwork, got {type(value).__name__}")


def block_of(layer: str) -> tuple[str, int] | None:
    """The block tuple ComfyUI reports in ``extra_options['block']`` for a UNet layer path
    (``input_blocks.4.1.transformer_blocks.0.attn1`` -> ``("input", 4)``); None outside the blocks."""
    parts = layer.split(".")
    if parts[0] == "input_blocks":
        return ("input", int(parts[1]))
    if parts[0] == "middle_block":
        return ("middle", 0)
    if parts[0] == "output_blocks":
        return ("output", int(parts[1]))
    return None


def parse_block_weights(text: str) -> tuple[tuple[tuple[str, int], float], ...]:
    """Parse per-block overrides such as ``"input 4: 0.5, middle 0: 0, output 3: 1.2"``.

    Raises ValueError naming the item that does not parse.
    """
    items = []
    for raw in text.replace("\n", ",").split(","):
        item = raw.strip()
        if not item:
            continue
        where, sep, value = item.partition(":")
        parts = where.split()
        try:
            if not sep or len(parts) != 2 or parts[0] not in BLOCK_GROUPS:
                raise ValueError
            key, weight = (parts[0], int(parts[1])), float(value)
        except ValueError:
            raise ValueError(f"block weight {item!r} does not parse; write e.g. 'input 4: 0.5' "
                             f"(group one of {', '.join(BLOCK_GROUPS)}, block number, weight)") from None
        if not math.isfinite(weight):
            raise ValueError(f"block weight {item!r} must be a finite number")
        items.append((key, weight))
    return tuple(items)
