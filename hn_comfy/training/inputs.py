"""Turn TrainHypernetwork's LATENT and CONDITIONING (or captions) inputs into one item per image.

The node takes its inputs as lists (like ComfyUI's TrainLoraNode), so it accepts one batched
LATENT with one CONDITIONING, the per-image lists that Load Image and Text Dataset from Folder ->
VAE Encode / CLIP Text Encode produce, and the lists of ComfyUI's dataset nodes: Make Training
Dataset and Load Training Dataset (one LATENT and one CONDITIONING per image) and Resolution
Bucket (one LATENT batch per size with a CONDITIONING of one entry per image). Latents of
different sizes are fine: the trainer never batches two sizes together. In caption mode, a
caption per image (or one for all) takes the conditioning's place. Everything is cloned outside
inference mode: tensors made under ComfyUI's inference mode cannot take part in a backward pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...hn_core.training import TrainingError


@dataclass
class TrainingItems:
    latents: list[torch.Tensor]  # [C, H, W] each, as VAE Encode gave them
    conditionings: list[list] | None  # [tensor, dict] per image (the same object when one is shared)
    shared_conditioning: bool
    captions: list[str] | None = None  # caption mode: one caption per image instead of conditionings


def collect_training_items(latent_inputs: list, conditioning_inputs: list | None,
                           captions: list | None = None) -> TrainingItems:
    """`captions` (caption mode) replaces `conditioning_inputs`; giving both is an error."""
    latents = _split_latents(latent_inputs)
    if captions is not None:
        if conditioning_inputs:
            raise TrainingError("both a conditioning and a CLIP with captions are connected: connect one of them "
                                "(the CLIP encodes the captions at every step; the conditioning is used as it is)")
        return TrainingItems(latents, None, shared_conditioning=False, captions=_captions_per_image(captions, latents))
    conditioning_inputs = conditioning_inputs or []
    entries = [entry for conditioning in conditioning_inputs for entry in _entries_of(conditioning)]
    if not entries:
        raise TrainingError("no prompts: connect a conditioning (CLIP Text Encode: one shared prompt, or one "
                            "per image), or a CLIP with captions")
    if len(entries) == 1:
        return TrainingItems(latents, [clone_conditioning_entry(entries[0])] * len(latents), shared_conditioning=True)
    if len(entries) != len(latents):
        raise TrainingError(f"got {len(entries)} conditionings for {len(latents)} images: give either one "
                            "CONDITIONING shared by all images or exactly one per image (in the same order)")
    return TrainingItems(latents, [clone_conditioning_entry(entry) for entry in entries], shared_conditioning=False)


def _captions_per_image(captions: list, latents: list) -> list[str]:
    if not all(isinstance(caption, str) for caption in captions):
        raise TrainingError("captions must be text (a STRING list, e.g. the texts of Load Image-Text from Folder)")
    if not captions:
        return [""] * len(latents)  # like Make Training Dataset without texts: unconditional prompts
    if len(captions) == 1:
        return list(captions) * len(latents)
    if len(captions) != len(latents):
        raise TrainingError(f"got {len(captions)} captions for {len(latents)} images: give one caption per image "
                            "(in the images' order) or one for all")
    return list(captions)


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


def clone_conditioning_entry(entry) -> list:
    """A copy of a [tensor, options] entry with ordinary (non-inference) tensors."""
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
