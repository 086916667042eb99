"""What a ComfyUI model offers a hypernetwork: the key-input widths of its attention layers."""
from __future__ import annotations


def attention_key_widths(model) -> dict[str, set[int]]:
    """{'attn1': widths, 'attn2': widths} of the inputs to each attention's to_k projection."""
    widths: dict[str, set[int]] = {"attn1": set(), "attn2": set()}
    diffusion_model = model.get_model_object("diffusion_model")
    for name, module in diffusion_model.named_modules():
        kind = name.rsplit(".", 1)[-1]
        to_k = getattr(module, "to_k", None)
        if kind in widths and to_k is not None and hasattr(to_k, "in_features"):
            widths[kind].add(int(to_k.in_features))
    return widths
