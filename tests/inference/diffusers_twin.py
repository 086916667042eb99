"""One random UNet in two forms: a ComfyUI ModelPatcher and a diffusers pipeline holding the same weights.

No weights can be downloaded, so both sides are built from configs: the ComfyUI model from its
``comfy.supported_models`` class (``tests.host.models.build``, seeded), the diffusers
``UNet2DConditionModel`` from the matching diffusers config, its state dict filled from the ComfyUI
one through ComfyUI's own diffusers <-> UNet key table (``comfy.utils.unet_to_diffusers``). The load
is strict, so a config pair that does not describe the same network fails here, not later.

The pipeline has only its UNet and a scheduler (no VAE, text encoders or tokenizers): enough for the
pipeline's LoRA loader mixin, ``load_lora_weights`` and ``fuse_lora``, which only touch the UNet when
a file holds no text-encoder keys.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from tests.host import models


@dataclass(frozen=True)
class Layout:
    family: str  # 'sd1' or 'sdxl': the ComfyUI model class and the diffusers pipeline
    comfy_unet: dict  # ComfyUI's unet_config
    diffusers_unet: dict  # UNet2DConditionModel(**...)
    dims: tuple[int, ...]  # the hypernetwork's dims: every attention width of the model
    notes: str = field(default="")


_SD1_COMMON = dict(in_channels=4, out_channels=4, sample_size=8, cross_attention_dim=768, attention_head_dim=8)

LAYOUTS = {
    # SD1.5's block pattern in miniature (two res blocks per level, no attention at the lowest level),
    # two attention widths, 32 and 64, as in the issue.
    "sd1_two_widths": Layout(
        "sd1",
        {**models._COMMON, "adm_in_channels": None, "model_channels": 32, "num_res_blocks": [2, 2, 2],
         "channel_mult": [1, 2, 2], "transformer_depth": [1, 1, 1, 1, 0, 0], "transformer_depth_middle": 1,
         "transformer_depth_output": [1, 1, 1, 1, 1, 1, 0, 0, 0], "use_linear_in_transformer": False,
         "context_dim": 768, "num_heads": 8},
        {**_SD1_COMMON, "layers_per_block": 2, "block_out_channels": (32, 64, 64),
         "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
         "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")},
        (32, 64, 768)),
    # The tests' usual tiny SD1 (tests.host.models.TINY_SD1_UNET): one res block, attention at every
    # level, widths 32 / 64 / 128.
    "sd1_tiny": Layout(
        "sd1", dict(models.TINY_SD1_UNET),
        {**_SD1_COMMON, "layers_per_block": 1, "block_out_channels": (32, 64, 128),
         "down_block_types": ("CrossAttnDownBlock2D",) * 3, "up_block_types": ("CrossAttnUpBlock2D",) * 3},
        (32, 64, 128, 768)),
    # SDXL's layout in miniature: SGM names, no attention at the top level, more transformers deeper
    # (1 then 2, the middle as deep as the last level, as diffusers builds it), linear proj_in/out,
    # class vector from pooled text + sizes (text_time), 2048-wide context, 8-channel heads.
    "sdxl": Layout(
        "sdxl",
        {**models._COMMON, "num_classes": "sequential", "adm_in_channels": 2816, "model_channels": 32,
         "num_res_blocks": [2, 2, 2], "channel_mult": [1, 2, 4], "transformer_depth": [0, 0, 1, 1, 2, 2],
         "transformer_depth_middle": 2, "transformer_depth_output": [0, 0, 0, 1, 1, 1, 2, 2, 2],
         "use_linear_in_transformer": True, "context_dim": 2048, "num_head_channels": 8},
        {"in_channels": 4, "out_channels": 4, "sample_size": 8, "layers_per_block": 2,
         "block_out_channels": (32, 64, 128),
         "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
         "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
         "transformer_layers_per_block": (1, 1, 2), "attention_head_dim": (4, 8, 16),
         "use_linear_projection": True, "cross_attention_dim": 2048, "addition_embed_type": "text_time",
         "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2816},
        (64, 128, 2048)),
}


def comfy_model(name: str, seed: int = 0):
    """The ComfyUI side (fp32, seeded), built once per session; a clone per call."""
    import comfy.supported_models

    layout = LAYOUTS[name]
    config_cls = comfy.supported_models.SDXL if layout.family == "sdxl" else comfy.supported_models.SD15
    return models._cached(f"twin_{name}", seed, torch.float32, lambda: models.build(
        config_cls, layout.comfy_unet, seed=seed, dtype=torch.float32)).clone()


def diffusers_unet(name: str, model):
    """A diffusers UNet2DConditionModel (fp32) with exactly the weights of ``model`` (a ModelPatcher)."""
    import comfy.utils
    from diffusers import UNet2DConditionModel

    layout = LAYOUTS[name]
    unet = UNet2DConditionModel(**layout.diffusers_unet).to(torch.float32)
    source = model.model.diffusion_model.state_dict()
    table = comfy.utils.unet_to_diffusers(dict(layout.comfy_unet))  # diffusers key -> UNet key
    wanted = unet.state_dict()
    missing = sorted(k for k in wanted if k not in table or table[k] not in source)
    if missing:
        raise AssertionError(f"layout {name}: no ComfyUI weight for diffusers keys {missing[:5]} ...")
    unet.load_state_dict({k: source[table[k]].detach().clone() for k in wanted}, strict=True)
    return unet.eval()


def pipeline(name: str, unet):
    """The family's diffusers pipeline around ``unet`` (its LoRA loader is the one users call)."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    scheduler = EulerDiscreteScheduler()
    if LAYOUTS[name].family == "sdxl":
        return StableDiffusionXLPipeline(vae=None, text_encoder=None, text_encoder_2=None, tokenizer=None,
                                         tokenizer_2=None, unet=unet, scheduler=scheduler)
    return StableDiffusionPipeline(vae=None, text_encoder=None, tokenizer=None, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def ldm_layer(name: str, diffusers_module: str) -> str:
    """``down_blocks.0.attentions.0.transformer_blocks.0.attn1`` -> ComfyUI's ``input_blocks.1.1....attn1``."""
    import comfy.utils

    table = comfy.utils.unet_to_diffusers(dict(LAYOUTS[name].comfy_unet))
    return table[diffusers_module + ".to_k.weight"][: -len(".to_k.weight")]
