"""Helpers for the LoRA export / bake tests: a tiny SDXL-shaped model, running the export nodes, and
measuring a model against Apply Hypernetwork the way a user would (files from disk, ComfyUI's loaders)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.host import models
from tests.inference import support as s

# SDXL in miniature: SDXL's model class (class vector from pooled text + sizes, SGM names), a 2048-wide
# text context, linear transformer in/out, no transformer at the top level; 32/64/128 channels.
TINY_SDXL_UNET = {
    **models._COMMON, "num_classes": "sequential", "adm_in_channels": 2816, "model_channels": 32,
    "num_res_blocks": [1, 1, 1], "channel_mult": [1, 2, 4], "transformer_depth": [0, 1, 2],
    "transformer_depth_middle": 1, "transformer_depth_output": [0, 0, 1, 1, 2, 2],
    "use_linear_in_transformer": True, "context_dim": 2048, "num_head_channels": 8,
}
TINY_SDXL_DIMS = (64, 128, 2048)
# The smallest UNet ComfyUI's checkpoint loader detects as SD1.5 (320 channels, one level; 25.8 M
# parameters): what a saved bake is reloaded as.
ONE_LEVEL_SD15_UNET = {
    **models._COMMON, "adm_in_channels": None, "model_channels": 320, "num_res_blocks": [1], "channel_mult": [1],
    "transformer_depth": [1], "transformer_depth_middle": 1, "transformer_depth_output": [1, 1],
    "use_linear_in_transformer": False, "context_dim": 768, "num_heads": 8,
}
ONE_LEVEL_DIMS = (320, 768)
TINY_SD1_DIMS = (32, 64, 128, 768)
LATENT = 8  # probe latent size (8x8)


def tiny_sdxl():
    import comfy.supported_models

    return models._cached("tiny_sdxl", 0, None,
                          lambda: models.build(comfy.supported_models.SDXL, TINY_SDXL_UNET, seed=0)).clone()


def one_level_sd15():
    import comfy.supported_models

    return models._cached("one_level_sd15", 0, None, lambda: models.build(
        comfy.supported_models.SD15, ONE_LEVEL_SD15_UNET, seed=0, dtype=torch.float32)).clone()


def probe(model, seed: int = 3, size: int = LATENT):
    """(conditioning, latent, x, context, extra) the export nodes measure with, rebuilt the way they document
    it: x = seeded N(0, 1) of the latent's shape times sqrt(1 + sigma^2), sigma = the schedule's midpoint."""
    width = max(models.attention_widths(model).attn2)
    gen = torch.Generator().manual_seed(100 + seed)
    context = torch.randn(1, 77, width, generator=gen)
    extra = {}
    if getattr(model.model, "adm_channels", 0) == 2816:
        extra = {"pooled_output": torch.randn(1, 1280, generator=gen), "width": size * 8, "height": size * 8}
    latent = {"samples": torch.zeros(1, 4, size, size)}
    sigma = mid_sigma(model)
    x = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(seed)) * (1 + sigma ** 2) ** 0.5
    return [[context, extra]], latent, x


def to_lora(comfy_host, model, hypernetwork, name, **options):
    defaults = dict(strength=1.0, rank=0, value_bias="to_out diff_b (ComfyUI only)", save_dtype="fp32",
                    overwrite=True)
    out = s.run_node(comfy_host, "HypernetworkToLoRA", model=model, hypernetwork=hypernetwork, filename=name,
                     **{**defaults, **options})
    return out["result"]


def metadata(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return dict(f.metadata())


def reported_unet_error(path: Path) -> float:
    return json.loads(metadata(path)["hn_fidelity"])["unet"]


def eps(model, x, sigma, positive) -> torch.Tensor:
    """One UNet evaluation through ComfyUI's sampling path, as epsilon."""
    context, extra = positive[0]
    denoised = models.unet_forward(model, x, sigma, context, pooled=extra.get("pooled_output"))
    return (x - denoised) / sigma


def mid_sigma(model) -> float:
    return float(model.get_model_object("model_sampling").percent_to_sigma(0.5))


def effect_error(model, candidate, applied, x, sigma, positive) -> float:
    """||candidate - applied|| / ||applied - plain|| of the UNet output: the share of the effect got wrong."""
    plain = eps(model, x, sigma, positive)
    want = eps(applied, x, sigma, positive)
    got = eps(candidate, x, sigma, positive)
    return float((got - want).double().norm() / (want - plain).double().norm())


def lora_model(comfy_host, model, lora_name):
    (patched,) = s.run_node(comfy_host, "LoraLoaderModelOnly", model=model, lora_name=lora_name, strength_model=1.0)
    return patched


def folder_listing(folder: Path) -> set[str]:
    return {p.name for p in Path(folder).rglob("*")} if Path(folder).exists() else set()
