"""The ModelPatcher that lets ComfyUI load a hypernetwork with the model and count its memory.

ComfyUI loads whatever an attention patch's ``models()`` returns. It tracks each loaded patcher
weakly and logs "memory leak" whenever a patcher dies while the module it wraps lives on, which
would happen every time a patched clone is dropped while the loaded file stays cached. So there
is one patcher per network and device pair, kept on the network itself: it lives exactly as long
as the network, and every clone that uses the network shares it (ComfyUI then loads it once).
"""
from __future__ import annotations

import comfy.model_patcher

_ATTRIBUTE = "_comfy_companion_patchers"


def companion_patcher(network, load_device, offload_device):
    patchers = network.__dict__.setdefault(_ATTRIBUTE, {})
    key = (str(load_device), str(offload_device))
    if key not in patchers:
        patchers[key] = comfy.model_patcher.ModelPatcher(
            network, load_device=load_device, offload_device=offload_device)
    return patchers[key]
