"""A ``<lora:…>`` tag applied with ComfyUI's own LoRA code, the calls its LoraLoader node makes.

LoraLoader reads the file with ``comfy.utils.load_torch_file(path, safe_load=True)`` and hands it to
``comfy.sd.load_lora_for_models``; newer hosts (0.33) also pass the file's metadata on. Both strengths
zero returns the inputs themselves, as LoraLoader does.
"""
from __future__ import annotations

import inspect

import comfy.sd
import comfy.utils


def _takes_metadata() -> bool:
    return "lora_metadata" in inspect.signature(comfy.sd.load_lora_for_models).parameters


def load_lora(model, clip, path: str, strength_model: float, strength_clip: float):
    """(model, clip) with the LoRA file at ``path``; ``clip`` may be None (model part only)."""
    if strength_model == 0 and strength_clip == 0:
        return model, clip
    if _takes_metadata():
        lora, metadata = comfy.utils.load_torch_file(path, safe_load=True, return_metadata=True)
        return comfy.sd.load_lora_for_models(model, clip, lora, strength_model, strength_clip,
                                             lora_metadata=metadata)
    lora = comfy.utils.load_torch_file(path, safe_load=True)
    return comfy.sd.load_lora_for_models(model, clip, lora, strength_model, strength_clip)
