"""Kohya ("lora_unet_...") names for the attention projections of SD1.x / SD2.x / SDXL UNets.

Layers are named by their path in the original (LDM / SGM) UNet, the names ComfyUI's model
uses: ``input_blocks.1.1.transformer_blocks.0.attn1``. Kohya's trainers, and so most LoRA files
readers meet, spell them two ways:

- SD1.x / SD2.x: the diffusers module path, ``down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k``;
- SDXL: the SGM path itself, ``input_blocks.4.1.transformer_blocks.0.attn1.to_k``;

with dots turned into underscores and ``lora_unet_`` in front. ComfyUI maps both spellings for
any UNet, A1111's Lora extension and diffusers' kohya converter expect the one of their family.
"""
from __future__ import annotations

from typing import Sequence

PREFIX = "lora_unet_"


def kohya_name(layer: str, projection: str, *, sgm: bool, res_blocks_per_level: Sequence[int]) -> str:
    """The kohya key stem of ``<layer>.<projection>`` (projection: ``to_k``, ``to_v``, ``to_out.0``).

    ``sgm``: keep the SGM path (SDXL). Otherwise the path is rewritten to diffusers' layout, which
    needs the UNet's residual blocks per level (``num_res_blocks``: [2, 2, 2, 2] for SD1.x).
    """
    path = layer if sgm else diffusers_path(layer, res_blocks_per_level)
    return PREFIX + f"{path}.{projection}".replace(".", "_")


def diffusers_path(layer: str, res_blocks_per_level: Sequence[int]) -> str:
    """``input_blocks.1.1.rest`` -> ``down_blocks.0.attentions.0.rest`` (and mid / up blocks likewise).

    Each down level holds ``n`` residual blocks (each followed by its transformer) and then a
    downsampler, so it takes ``n + 1`` input-block numbers after the stem (input block 0); each up
    level holds ``n + 1`` output blocks, in reverse level order.
    """
    parts = layer.split(".")
    if parts[:2] == ["middle_block", "1"]:
        return "mid_block.attentions.0." + ".".join(parts[2:])
    if len(parts) < 4 or parts[2] != "1" or not parts[1].isdigit():
        raise ValueError(f"{layer!r} is not a transformer inside a UNet block")
    group, number, rest = parts[0], int(parts[1]), ".".join(parts[3:])
    counts = [int(n) for n in res_blocks_per_level]
    if group == "input_blocks":
        start = 1
        for level, n in enumerate(counts):
            if start <= number < start + n:
                return f"down_blocks.{level}.attentions.{number - start}.{rest}"
            start += n + 1
    elif group == "output_blocks":
        start = 0
        for up_level, n in enumerate(reversed(counts)):
            if start <= number < start + n + 1:
                return f"up_blocks.{up_level}.attentions.{number - start}.{rest}"
            start += n + 1
    raise ValueError(f"{layer!r} has no diffusers name for residual blocks per level {counts}")
