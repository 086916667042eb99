"""What the export nodes read from a ComfyUI model and their optional inputs.

- the attention weights the hypernetwork's change depends on, as the model will compute with them
  (weight patches such as a LoRA loaded before are applied), keyed by the UNet's layer paths;
- the model family facts the kohya names need (SGM names for SDXL, residual blocks per level);
- the inputs a measurement and a calibration run on: text contexts, latent shape, sigma.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...hn_core.export.lora_export import AttentionWeights, attention_weights_from_state_dict
from ..apply.model_attention import attention_key_widths

PREFIX = "diffusion_model."
DEFAULT_LATENT_SIZE = 64  # 512 px for SD1/SD2; SDXL gets the same small size, enough to measure with


def model_layers(model) -> dict[str, AttentionWeights]:
    """{layer path: AttentionWeights} of the model's UNet, with its pending weight patches applied."""
    import comfy.lora

    state = model.model.state_dict()
    originals = _originals_of_loaded_clone(model)
    wanted = {}
    for key, value in state.items():
        if key.startswith(PREFIX) and key.endswith((".to_k.weight", ".to_v.weight", ".to_out.0.weight")):
            value = originals.get(key, value)
            patches = model.patches.get(key)
            if patches:  # e.g. a LoRA on the same projection: W is what the model will use
                value = comfy.lora.calculate_weight(patches, value.to(torch.float32, copy=True), key)
            wanted[key] = value
    return attention_weights_from_state_dict(wanted, prefix=PREFIX)


def _originals_of_loaded_clone(model) -> dict:
    """The unpatched weights while some clone of this model is loaded with its patches in the layers.

    ComfyUI keeps the last model loaded, its weight patches (a LoRA) written into the layers it shares
    with every clone, and the original tensors in that patcher's ``backup``.
    """
    import comfy.model_management

    for loaded in comfy.model_management.current_loaded_models:
        patcher = loaded.model
        if patcher is not None and patcher.model is model.model and getattr(patcher, "backup", None):
            return {key: entry.weight for key, entry in patcher.backup.items()}
    return {}


def is_sdxl(model) -> bool:
    import comfy.model_base

    return isinstance(model.model, (comfy.model_base.SDXL, comfy.model_base.SDXLRefiner))


def res_blocks_per_level(model) -> list[int]:
    blocks = model.model.model_config.unet_config.get("num_res_blocks", [2, 2, 2, 2])
    return list(blocks) if isinstance(blocks, (list, tuple)) else [int(blocks)] * 4


def base_model_version(model) -> str:
    """kohya's ``ss_base_model_version`` for the model's family (A1111 shows it)."""
    context = max(attention_key_widths(model)["attn2"], default=768)
    return "sdxl_base_v1-0" if is_sdxl(model) else {1024: "sd_v2"}.get(context, "sd_v1")


@dataclass(frozen=True)
class ProbeInputs:
    """What the calibration sampling and the fidelity step run on."""

    positive: list  # ComfyUI CONDITIONING
    latent_shape: tuple[int, ...]
    seed: int
    from_user: bool  # False: a seeded random stand-in for the text context


def probe_inputs(model, conditioning, latent, seed: int) -> ProbeInputs:
    """The user's CONDITIONING and LATENT shape when given, else seeded stand-ins of the right widths."""
    channels = getattr(getattr(model.model, "latent_format", None), "latent_channels", 4)
    if latent is not None:
        shape = tuple(latent["samples"].shape)
    else:
        shape = (1, channels, DEFAULT_LATENT_SIZE, DEFAULT_LATENT_SIZE)
    if conditioning:
        return ProbeInputs(conditioning, shape, seed, True)
    width = max(attention_key_widths(model)["attn2"])
    generator = torch.Generator().manual_seed(seed)
    context = torch.randn(1, 77, width, generator=generator)
    extra = {}
    if is_sdxl(model):  # SDXL builds its class vector from the pooled text embedding and the size
        extra = {"pooled_output": torch.randn(1, 1280, generator=generator),
                 "width": shape[-1] * 8, "height": shape[-2] * 8}
    return ProbeInputs([[context, extra]], shape, seed, False)


def text_contexts(positive) -> list[torch.Tensor]:
    """The cross-attention key inputs a CONDITIONING carries (one tensor per entry)."""
    return [entry[0] for entry in positive if isinstance(entry[0], torch.Tensor)]


def probe_latent(inputs: ProbeInputs, sigma: float) -> torch.Tensor:
    """The noisy latent the fidelity step evaluates: seeded N(0, 1) of the probe shape times
    sqrt(1 + sigma^2), the spread of a unit-variance latent with noise of that sigma added."""
    generator = torch.Generator().manual_seed(inputs.seed)
    return torch.randn(inputs.latent_shape, generator=generator) * (1.0 + sigma ** 2) ** 0.5


def probe_sigma(model) -> float:
    """The sigma of the fidelity step: halfway through the model's schedule."""
    return float(model.get_model_object("model_sampling").percent_to_sigma(0.5))
