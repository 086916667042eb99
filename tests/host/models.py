"""Randomly initialised SD1.x / SD2.x / SDXL UNets built from ComfyUI's own model classes.

No weights can be downloaded, so each builder takes the UNet config ComfyUI itself detects for a
real checkpoint (``comfy.model_detection``), builds the model the way ``comfy.sd`` does for a
checkpoint (``supported_models`` config -> ``model_base`` model -> ``ModelPatcher``) and fills the
weights from a seeded generator. Same seed, same weights, in any process.

``unet_forward`` evaluates the model once through ComfyUI's sampling path, so attention patches,
wrappers and ``transformer_options`` reach the UNet exactly as they do under a KSampler.

Needs a started host (``comfy_host.start()``); the conftest fixtures take care of that.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

# The UNet configs comfy.model_detection reports for real checkpoints (its unet_config_from_diffusers_unet
# table). Only the fields that select the architecture; dtype is chosen at build time.
_COMMON = {
    "use_checkpoint": False, "image_size": 32, "in_channels": 4, "out_channels": 4,
    "use_spatial_transformer": True, "legacy": False, "use_temporal_attention": False,
    "use_temporal_resblock": False,
}
SD15_UNET = {
    **_COMMON, "adm_in_channels": None, "model_channels": 320, "num_res_blocks": [2, 2, 2, 2],
    "channel_mult": [1, 2, 4, 4], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_middle": 1, "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    "use_linear_in_transformer": False, "context_dim": 768, "num_heads": 8,
}
SD21_UNET = {
    **_COMMON, "adm_in_channels": None, "model_channels": 320, "num_res_blocks": [2, 2, 2, 2],
    "channel_mult": [1, 2, 4, 4], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_middle": 1, "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    "use_linear_in_transformer": True, "context_dim": 1024, "num_head_channels": 64,
}
SDXL_UNET = {
    **_COMMON, "num_classes": "sequential", "adm_in_channels": 2816, "model_channels": 320,
    "num_res_blocks": [2, 2, 2], "channel_mult": [1, 2, 4], "transformer_depth": [0, 0, 2, 2, 10, 10],
    "transformer_depth_middle": 10, "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
    "use_linear_in_transformer": True, "context_dim": 2048, "num_head_channels": 64,
}
# SD1.x in miniature: same layout rules and 768-wide text context, 32/64/128-wide attention,
# one transformer per level (the lowest level too) and one res block per level. A few MB.
TINY_SD1_UNET = {
    **_COMMON, "adm_in_channels": None, "model_channels": 32, "num_res_blocks": [1, 1, 1],
    "channel_mult": [1, 2, 4], "transformer_depth": [1, 1, 1], "transformer_depth_middle": 1,
    "transformer_depth_output": [1, 1, 1, 1, 1, 1], "use_linear_in_transformer": False,
    "context_dim": 768, "num_heads": 8,
}


@dataclass(frozen=True)
class AttentionWidths:
    """Last dims of the key inputs that the model's attention layers see (what a hypernetwork matches)."""

    attn1: frozenset[int]  # self-attention: the normed hidden state
    attn2: frozenset[int]  # cross-attention: the text context


def tiny_sd1(seed: int = 0, dtype: torch.dtype | None = None):
    """A small SD1-like ModelPatcher: context 768, attn1 widths 32/64/128; builds in well under a second."""
    import comfy.supported_models

    return _cached("tiny_sd1", seed, dtype, lambda: build(comfy.supported_models.SD15, TINY_SD1_UNET, seed, dtype))


def sd15(seed: int = 0, dtype: torch.dtype | None = None):
    """SD1.5's UNet, true shapes (attn1 320/640/1280, context 768), random weights."""
    import comfy.supported_models

    return _cached("sd15", seed, dtype, lambda: build(comfy.supported_models.SD15, SD15_UNET, seed, dtype))


def sd2(seed: int = 0, dtype: torch.dtype | None = None):
    """SD2.1's UNet (768-v layout, eps prediction here), true shapes: attn1 320/640/1280, context 1024."""
    import comfy.supported_models

    return _cached("sd2", seed, dtype, lambda: build(comfy.supported_models.SD20, SD21_UNET, seed, dtype))


def sdxl(seed: int = 0, dtype: torch.dtype | None = None):
    """SDXL base's UNet, true shapes: attn1 640/1280, context 2048 (2.6 G parameters)."""
    import comfy.supported_models

    return _cached("sdxl", seed, dtype, lambda: build(comfy.supported_models.SDXL, SDXL_UNET, seed, dtype))


_cache: dict[tuple, object] = {}
# fp32 on CPU: SD1.5 and SD2 take 3.5 GB each, SDXL 10.5 GB. Keep one full-size model at a time so a
# session that uses all three peaks near 11 GB, not 18; tests that share a kind should run together.
_FULL_SIZE = {"sd15", "sd2", "sdxl"}


def _cached(name: str, seed: int, dtype, make):
    # Building a full-size UNet costs seconds: reuse it per (kind, seed, dtype).
    key = (name, seed, dtype)
    if key not in _cache:
        if name in _FULL_SIZE:
            for old in [k for k in _cache if k[0] in _FULL_SIZE]:
                log.info("dropping cached %s to make room for %s", old[0], name)
                del _cache[old]
            gc.collect()
        t0 = time.perf_counter()
        _cache[key] = make()
        log.info("built %s (seed %d) in %.1f s", name, seed, time.perf_counter() - t0)
    return _cache[key]


def release(name: str | None = None) -> None:
    """Drop cached models (all, or those of one kind) so their memory can be freed."""
    for key in [k for k in _cache if name is None or k[0] == name]:
        del _cache[key]


def build(config_cls, unet_config: dict, seed: int = 0, dtype: torch.dtype | None = None):
    """A ModelPatcher for ``config_cls`` (a ``comfy.supported_models`` class) with seeded random weights.

    Mirrors ``comfy.sd.load_state_dict_guess_config``: the weight dtype is what ComfyUI would pick
    for this device unless ``dtype`` says otherwise, with ComfyUI's manual cast where it needs one.
    """
    import comfy.model_management as mm
    import comfy.model_patcher

    model_config = config_cls(dict(unet_config))
    load_device = mm.get_torch_device()
    if dtype is None:
        dtype = mm.unet_dtype(model_params=0, supported_dtypes=model_config.supported_inference_dtypes)
    manual_cast = mm.unet_manual_cast(dtype, load_device, model_config.supported_inference_dtypes)
    model_config.set_inference_dtype(dtype, manual_cast)
    # ComfyUI's layers skip weight init (the checkpoint overwrites it); ours is filled below.
    model = model_config.get_model({}, device=mm.unet_offload_device())
    randomize_(model.diffusion_model, seed)
    model.diffusion_model.eval()
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=mm.unet_offload_device())


@torch.no_grad()
def randomize_(module: torch.nn.Module, seed: int) -> None:
    """Fill every parameter from ``seed`` with torch's default init for its layer type.

    comfy.ops layers override ``reset_parameters`` with a no-op, so call the torch base class's
    (Kaiming-uniform for Linear/Conv, ones/zeros for norms): activations stay in a sane range.
    """
    done: set[int] = set()
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG alone
        torch.manual_seed(seed)
        for sub in module.modules():
            reset = _torch_reset_parameters(type(sub))
            if reset is not None:
                reset(sub)
                done.update(id(p) for p in sub.parameters(recurse=False))
        for p in module.parameters():
            if id(p) not in done:  # anything exotic: small normal noise, never uninitialised memory
                p.normal_(0.0, 0.02)


def _torch_reset_parameters(cls: type):
    for base in cls.__mro__:
        if base.__module__.startswith("torch.nn.modules") and "reset_parameters" in base.__dict__:
            return base.__dict__["reset_parameters"]
    return None


def attention_widths(patcher) -> AttentionWidths:
    """The key-input widths of every attn1 / attn2 in the UNet, read from the layers themselves."""
    attn1, attn2 = set(), set()
    for _, _, block in transformer_blocks(patcher):
        attn1.add(block.attn1.to_k.in_features)
        attn2.add(block.attn2.to_k.in_features)
    return AttentionWidths(frozenset(attn1), frozenset(attn2))


def transformer_blocks(patcher) -> list[tuple[tuple[str, int], int, torch.nn.Module]]:
    """``(block, transformer_index, BasicTransformerBlock)`` in forward order.

    ``block`` is ``("input"|"middle"|"output", id)`` as the UNet puts it in ``extra_options["block"]``.
    """
    from comfy.ldm.modules.attention import BasicTransformerBlock

    unet = patcher.model.diffusion_model
    groups = [("input", unet.input_blocks), ("middle", [unet.middle_block]), ("output", unet.output_blocks)]
    out = []
    for kind, blocks in groups:
        for block_id, block in enumerate(blocks):
            found = [m for m in block.modules() if isinstance(m, BasicTransformerBlock)]
            out += [((kind, block_id), index, m) for index, m in enumerate(found)]
    return out


def unet_forward(patcher, x: torch.Tensor, sigma: float, context: torch.Tensor, *,
                 pooled: torch.Tensor | None = None, sigmas: torch.Tensor | None = None) -> torch.Tensor:
    """One model evaluation at ``sigma`` through ComfyUI's own sampling path; returns the denoised x0.

    Runs ``comfy.samplers.sample`` (what KSampler uses) with a one-call sampler and cfg 1.0: the
    model is loaded by ``load_models_gpu`` (patch objects moved with ``to(device)`` / ``to(dtype)``),
    conds are processed by ComfyUI, ``calc_cond_batch`` builds ``transformer_options`` (``sigmas``,
    ``sample_sigmas``, ``cond_or_uncond``, patches, wrappers) and calls ``BaseModel.apply_model``.

    ``x``: latent ``[B, 4, H, W]`` (H, W multiples of 8). ``context``: ``[B, T, context_dim]``.
    ``pooled``: SDXL's pooled text embedding ``[B, 1280]`` (seeded zeros-free default if omitted).
    ``sigmas``: the schedule reported as ``sample_sigmas`` (default ``[sigma, 0]``).
    """
    import comfy.samplers

    sigma_t = torch.tensor([float(sigma)])
    sigmas = torch.tensor([float(sigma), 0.0]) if sigmas is None else sigmas.float()
    extra = {}
    if getattr(patcher.model, "adm_channels", 0) == 2816:  # SDXL: builds its `y` from pooled + sizes
        if pooled is None:
            gen = torch.Generator().manual_seed(1234)
            pooled = torch.randn(context.shape[0], 1280, generator=gen)
        extra = {"pooled_output": pooled, "width": x.shape[-1] * 8, "height": x.shape[-2] * 8}
    cond = [[context, extra]]
    captured: list[torch.Tensor] = []

    def one_call(model, noise, sched, extra_args=None, callback=None, disable=None):
        # The sampler's view of the model: KSamplerX0Inpaint -> sampling_function -> calc_cond_batch.
        s_in = noise.new_ones([x.shape[0]])
        captured.append(model(x.to(noise.device), sigma_t.to(noise.device) * s_in, **extra_args))
        return noise

    sampler = comfy.samplers.KSAMPLER(one_call)
    with torch.inference_mode():  # ComfyUI executes nodes under inference mode
        comfy.samplers.sample(
            patcher, torch.zeros_like(x), cond, cond, 1.0, patcher.load_device, sampler, sigmas,
            latent_image=torch.zeros_like(x), seed=0, disable_pbar=True,
        )
    return captured[0].float().cpu()


def seeded_inputs(patcher, batch: int = 1, size: int = 8, tokens: int = 77, seed: int = 0):
    """Deterministic ``(x, context)`` for ``unet_forward``: a ``size`` x ``size`` latent and a text context."""
    context_dim = next(iter(attention_widths(patcher).attn2))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, size, size, generator=gen)
    context = torch.randn(batch, tokens, context_dim, generator=gen)
    return x, context
