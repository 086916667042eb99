"""Draw preview pictures: each prompt sampled from empty latents as KSampler + VAE Decode would.

Used by TrainHypernetwork's previews. The caller chooses the model (the input model for the base
picture, the training clone for a step's) and owns torch's RNG and autograd state around the call.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

import comfy.sample


@dataclass(frozen=True)
class SamplingSettings:
    seed: int
    steps: int
    cfg: float
    sampler: str
    scheduler: str
    width: int
    height: int


def empty_latent(model, vae, width: int, height: int) -> torch.Tensor:
    """A zero latent of one picture at (width, height) for `model`, in the VAE's scale."""
    channels = model.get_model_object("latent_format").latent_channels
    ratio = vae.spacial_compression_encode()
    return torch.zeros(1, channels, height // ratio, width // ratio)


def zeroed(conditioning: list) -> list:
    """The conditioning with its tensors set to zero (as ComfyUI's ConditioningZeroOut makes it):
    the negative prompt when none is given; with cfg 1 it is never evaluated."""
    result = []
    for tensor, options in conditioning:
        options = dict(options)
        if isinstance(options.get("pooled_output"), torch.Tensor):
            options["pooled_output"] = torch.zeros_like(options["pooled_output"])
        result.append([torch.zeros_like(tensor), options])
    return result


def draw_pictures(model, vae, prompts: list[tuple[list, list]], settings: SamplingSettings) -> torch.Tensor:
    """One picture per (positive, negative) prompt, all from the same seed: [N, H, W, 3] in 0..1."""
    pictures = []
    for positive, negative in prompts:
        latent = empty_latent(model, vae, settings.width, settings.height)
        noise = comfy.sample.prepare_noise(latent, settings.seed)
        samples = comfy.sample.sample(model, noise, settings.steps, settings.cfg, settings.sampler,
                                      settings.scheduler, positive, negative, latent, denoise=1.0,
                                      disable_pbar=True, seed=settings.seed)
        pictures.append(vae.decode(samples)[:1].float().cpu())
    return torch.cat(pictures)
