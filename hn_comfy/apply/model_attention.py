"""What a ComfyUI model offers a hypernetwork: its attention layers and their key-input widths."""
from __future__ import annotations

from ...hn_core.inference.strength_profile import block_of


def attention_layers(model):
    """(object path, 'attn1'|'attn2', ComfyUI block tuple, attention module) for each layer."""
    diffusion_model = model.get_model_object("diffusion_model")
    for name, module in diffusion_model.named_modules():
        kind = name.rsplit(".", 1)[-1]
        if kind in ("attn1", "attn2") and hasattr(module, "to_k"):
            yield f"diffusion_model.{name}", kind, block_of(name), module


def attention_key_widths(model) -> dict[str, set[int]]:
    """{'attn1': widths, 'attn2': widths} of the inputs to each attention's to_k projection."""
    widths: dict[str, set[int]] = {"attn1": set(), "attn2": set()}
    for _path, kind, _block, attention in attention_layers(model):
        widths[kind].add(int(attention.to_k.in_features))
    return widths
