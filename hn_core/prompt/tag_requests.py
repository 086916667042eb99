"""What a ``<hypernet:…>`` or ``<lora:…>`` tag asks for: a name and its multipliers, validated.

A1111's rules (modules/extra_networks_hypernet.py, extensions-builtin/Lora/extra_networks_lora.py):

- ``<hypernet:NAME[:MULT]>``: MULT defaults to 1.0;
- ``<lora:NAME[:TE[:UNET]]>``: the first number is the *text-encoder* multiplier (default 1.0), the
  second the UNet one (default: the text-encoder one); named ``te=`` / ``unet=`` override them.

Beyond A1111 (which ignores named arguments on hypernet tags) a hypernet tag takes named
arguments that set its strength profile, like Hypernetwork Strength: see ``PROFILE_KEYS``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..inference.strength_profile import StrengthProfile
from .a1111_tags import PromptTag, PromptTagError

HYPERNET_KINDS = ("hypernet",)
LORA_KINDS = ("lora",)

# named argument -> StrengthProfile field (aliases: Hypernetwork Strength's words, sd.next's in/mid/out)
PROFILE_KEYS = {
    "start": "start_percent", "end": "end_percent",
    "attn1": "attn1", "self": "attn1", "attn2": "attn2", "cross": "attn2",
    "input": "input", "in": "input", "middle": "middle", "mid": "middle", "output": "output", "out": "output",
}
# a single block: input4=0.5, middle0=0, output3=1.2 (ComfyUI's extra_options["block"] numbering)
BLOCK_KEY = re.compile(r"(input|middle|output)(\d+)")
LORA_KEYS = ("te", "unet")


@dataclass(frozen=True)
class HypernetRequest:
    tag: PromptTag
    name: str
    multiplier: float
    profile: StrengthProfile


@dataclass(frozen=True)
class LoraRequest:
    tag: PromptTag
    name: str
    te_multiplier: float
    unet_multiplier: float


def hypernet_request(tag: PromptTag) -> HypernetRequest:
    positional = tag.positional
    name = _name(tag, positional)
    if len(positional) > 2:
        raise PromptTagError(tag.text, f"too many arguments {list(positional[2:])}: write "
                                       "<hypernet:NAME:MULTIPLIER> plus optional key=value arguments")
    multiplier = _number(tag, "multiplier", positional[1]) if len(positional) > 1 else 1.0
    return HypernetRequest(tag, name, multiplier, _profile(tag))


def lora_request(tag: PromptTag) -> LoraRequest:
    positional = tag.positional
    name = _name(tag, positional)
    named = _unique_named(tag)
    if len(positional) > 3 or "dyn" in named:
        raise PromptTagError(tag.text, "the dyn (dynamic dimension) argument is not supported by "
                                       "ComfyUI's LoRA loader; write <lora:NAME:TE:UNET>")
    unknown = [key for key in named if key not in LORA_KEYS]
    if unknown:
        raise PromptTagError(tag.text, f"unknown argument(s) {unknown}; a lora tag takes te= and unet=")
    te = _number(tag, "text-encoder multiplier", positional[1]) if len(positional) > 1 else 1.0
    te = _number(tag, "te", named["te"]) if "te" in named else te
    unet = _number(tag, "UNet multiplier", positional[2]) if len(positional) > 2 else te
    unet = _number(tag, "unet", named["unet"]) if "unet" in named else unet
    return LoraRequest(tag, name, te, unet)


def _name(tag: PromptTag, positional: tuple[str, ...]) -> str:
    if tag.args[0] not in positional[:1]:  # A1111 would take the next positional one: too surprising
        raise PromptTagError(tag.text, f"the first argument must be the name, not {tag.args[0]!r}")
    name = positional[0].strip()
    if not name:
        raise PromptTagError(tag.text, "the name is empty; write e.g. <hypernet:my_style:0.8>")
    return name


def _number(tag: PromptTag, what: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PromptTagError(tag.text, f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise PromptTagError(tag.text, f"{what} {text!r} must be a finite number")
    return value


def _unique_named(tag: PromptTag) -> dict[str, str]:
    named: dict[str, str] = {}
    for key, value in tag.named:
        key = key.strip().lower()
        if key in named:
            raise PromptTagError(tag.text, f"argument {key!r} is given twice")
        named[key] = value
    return named


def _profile(tag: PromptTag) -> StrengthProfile:
    fields: dict[str, float] = {}
    blocks: dict[tuple[str, int], float] = {}
    for key, value in _unique_named(tag).items():
        block = BLOCK_KEY.fullmatch(key)
        if key in PROFILE_KEYS:
            field = PROFILE_KEYS[key]
            if field in fields:  # an alias and its word both given
                raise PromptTagError(tag.text, f"argument {key!r} sets {field}, which is already set")
            fields[field] = _number(tag, key, value)
        elif block:
            blocks[(block.group(1), int(block.group(2)))] = _number(tag, key, value)
        else:
            raise PromptTagError(tag.text, f"unknown argument {key!r}; known: {', '.join(PROFILE_KEYS)}, "
                                           "and single blocks such as input4=, middle0=, output3=")
    try:
        return StrengthProfile(**fields, block_weights=tuple(blocks.items()))
    except ValueError as exc:
        raise PromptTagError(tag.text, str(exc)) from None
