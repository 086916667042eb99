"""A real ComfyUI CLIP (SD1's CLIP-L classes and tokenizer) shrunk to one narrow layer, random weights.

No text-encoder weights can be downloaded here. ComfyUI's own `comfy.sd.CLIP` with `SD1ClipModel`
is built with a smaller config (`clip_l_model_config`, which ComfyUI merges into CLIP-L's), so the
tokenizer, the 77-token chunks, the 768-wide output and the pooled output are the real ones. Built
under inference mode like a checkpoint loader's, and cached: one per seed.
"""
from __future__ import annotations

import torch

from tests.host import models
from tests.training.source_nodes import source_node

TINY_CLIP_L = {"num_hidden_layers": 1, "intermediate_size": 64, "num_attention_heads": 4}

_built: dict[int, object] = {}


def tiny_clip(seed: int = 0):
    if seed not in _built:
        import comfy.sd
        import comfy.sd1_clip
        import comfy.supported_models_base

        target = comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel)
        with torch.inference_mode():
            clip = comfy.sd.CLIP(target, model_options={"clip_l_model_config": dict(TINY_CLIP_L),
                                                        "dtype": torch.float32})
            models.randomize_(clip.cond_stage_model, seed)
        _built[seed] = clip
    return _built[seed].clone()


TinyClipSource = source_node("CLIP", tiny_clip, "Test-only stand-in for a checkpoint loader's CLIP output.")
