"""Turn TrainHypernetwork's LATENT and CONDITIONING inputs into one (latent, conditioning) per image.

The node takes its inputs as lists (like ComfyUI's TrainLoraNode), so it accepts both one batched
LATENT with one CONDITIONING, and the per-image lists that Load Image and Text Dataset from
Folder -> VAE Encode / CLIP Text Encode produce. Everything is cloned outside inference mode:
tensors made under ComfyUI's inference mode cannot take part in a backward pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..hn_core.training import TrainingError


@dataclass
class TrainingItems:
    latents: list[torch.Tensor]  # [C, H, W] each, as VAE Encode gave them
    conditionings: list[list]  # [tensor, dict] per image (the same object when one is shared)
    shared_conditioning: bool


def collect_training_items(latent_inputs: list, conditioning_inputs: list) -> TrainingItems:
    latents = _split_latents(latent_inputs)
    entries = [entry for conditioning in conditioning_inputs for entry in _entries_of(conditioning)]
    if not entries:
        raise TrainingError("the CONDITIONING input is empty: connect a CLIP Text Encode (one shared "
                            "prompt, or one per image)")
    if len(entries) == 1:
        return TrainingItems(latents, [_clone_entry(entries[0])] * len(latents), shared_conditioning=True)
    if len(entries) != len(latents):
        raise TrainingError(f"got {len(entries)} conditionings for {len(latents)} images: give either one "
                            "CONDITIONING shared by all images or exactly one per image (in the same order)")
    return TrainingItems(latents, [_clone_entry(entry) for entry in entries], shared_conditioning=False)


def _split_latents(latent_inputs: list) -> list[torch.Tensor]:
    latents = []
    for latent in latent_inputs:
        samples = latent.get("samples") if isinstance(latent, dict) else None
        if not isinstance(samples, torch.Tensor) or samples.ndim < 3:
            raise TrainingError("the LATENT input holds no latent images (expected the output of VAE Encode)")
        latents.extend(sample.detach().clone() for sample in samples)
    if not latents:
        raise TrainingError("the LATENT input holds zero images: connect VAE Encode with at least one image")
    if all(torch.count_nonzero(latent) == 0 for latent in latents):
        raise TrainingError("every training latent is all zeros (an Empty Latent Image?): encode the training "
                            "images with VAE Encode")
    broken = sum(1 for latent in latents if not bool(torch.isfinite(latent).all()))
    if broken:
        # Training on them would silently turn every weight into NaN.
        raise TrainingError(f"{broken} of {len(latents)} training latents contain NaN or infinite values: "
                            "check the VAE that encoded them")
    return latents


def _entries_of(conditioning) -> list:
    if not isinstance(conditioning, (list, tuple)):
        raise TrainingError(f"CONDITIONING input is a {type(conditioning).__name__}, not a conditioning list")
    for entry in conditioning:
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], torch.Tensor)):
            raise TrainingError("CONDITIONING entries must be [tensor, options] pairs, as CLIP Text Encode makes them")
    return list(conditioning)


def _clone_entry(entry) -> list:
    return [entry[0].detach().clone(), _clone_tensors(entry[1])]


def _clone_tensors(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _clone_tensors(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone_tensors(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_clone_tensors(v) for v in value)
    return value
