"""The strength profile a merged network carries (one network has one profile).

Inputs from Hypernetwork Strength carry a profile (where and when they act). A merge can keep a
profile only if every input has the same one. An exact stack equals the chain only where the
profile's multiplier is 0 or 1: at 0.5 the chain would see each input at half strength, and the
cross terms between inputs scale differently from the merged network's single strength.
"""
from __future__ import annotations

from typing import Sequence

from ..inference.strength_profile import StrengthProfile

MULTIPLIER_FIELDS = ("attn1", "attn2", "input", "middle", "output")


def common_profile(labelled: Sequence[tuple[str, StrengthProfile]], exact: bool) -> StrengthProfile:
    """The profile shared by every input; ValueError naming the first input that differs, or (for
    an exact stack) the multiplier that the merged network cannot reproduce."""
    first_label, profile = labelled[0]
    for label, other in labelled[1:]:
        if other != profile:
            raise ValueError(f"{label} carries a different strength profile (Hypernetwork Strength) from "
                             f"{first_label}; a merged network has one profile. Merge the networks without "
                             "Hypernetwork Strength and set the profile on the result")
    if exact:
        multipliers = [(name, getattr(profile, name)) for name in MULTIPLIER_FIELDS]
        multipliers += [(f"block {group} {index}", weight) for (group, index), weight in profile.block_weights]
        for name, value in multipliers:
            if value not in (0.0, 1.0):
                raise ValueError(f"the inputs' strength profile has {name} multiplier {value:g}; an exact stack "
                                 "equals the chain only at multipliers 0 and 1. Merge the networks without "
                                 "Hypernetwork Strength and set the profile on the result")
    return profile
