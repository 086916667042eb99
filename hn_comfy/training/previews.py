"""Preview pictures while TrainHypernetwork trains: inputs, checks, drawing, files, and the grid.

With a VAE and preview prompts connected, the prompts are drawn by the base model (strength 0)
once before training, then every N steps and after the last step by the network being trained
(strength 1, the weights of that step, dropout off, a fixed seed). Each picture is shown on the
node as it arrives (like a sampler's live preview), saved as
``output/hn_previews/<name>/<name>-<step>-<index>.png`` and collected into a grid image (a row
per prompt, a column per step). Drawing happens inside hn_core's training pause, so training
itself is bit-identical with or without previews.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

import comfy.patcher_extension
import comfy.samplers
import folder_paths
from comfy.cli_args import args

from ...hn_core.atomic_write import atomic_write
from ...hn_core.training.preview_grid import preview_grid
from ...hn_core.training import TrainingError
from ...hn_core.training.preview_plan import BASE_LABEL, preview_file_name, preview_subfolder
from ..apply.model_attention import attention_key_widths
from .preview_sampling import SamplingSettings, draw_pictures, zeroed
from .session import load_for_training

logger = logging.getLogger(__name__)

MAX_SIZE = 16384  # ComfyUI's largest image side (nodes.MAX_RESOLUTION)
_WRAPPER_KEY = "hypernetwork_training_preview"

PREVIEW_INPUTS = {
    "preview_vae": ("VAE", {"tooltip": "Draw previews while training: the VAE that decodes them (with "
                                       "preview_positive)."}),
    "preview_positive": ("CONDITIONING", {"tooltip": "The preview prompt(s): one row of pictures each (a list "
                                                     "of conditionings gives several rows)."}),
    "preview_negative": ("CONDITIONING", {"tooltip": "Optional negative prompt: one for all previews or one per "
                                                     "preview prompt. Without it, a zeroed-out prompt."}),
    "preview_every": ("INT", {"default": 100, "min": 0, "max": 10_000_000, "tooltip": "Draw previews every N "
                              "steps and after the last one, saved to output/hn_previews/<name>/; 0 = off."}),
    "preview_seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "tooltip": "Noise seed of every "
                             "preview (fixed, so the pictures compare across steps)."}),
    "preview_steps": ("INT", {"default": 20, "min": 1, "max": 10_000, "tooltip": "Sampling steps per preview."}),
    "preview_cfg": ("FLOAT", {"default": 7.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                              "tooltip": "Classifier-free guidance scale of the previews."}),
    "preview_sampler": (comfy.samplers.KSampler.SAMPLERS, {"default": "euler", "tooltip": "Sampler of the "
                        "previews."}),
    "preview_scheduler": (comfy.samplers.KSampler.SCHEDULERS, {"default": "normal", "tooltip": "Scheduler of "
                          "the previews."}),
    "preview_width": ("INT", {"default": 512, "min": 16, "max": MAX_SIZE, "step": 8, "tooltip": "Preview width in "
                              "pixels (a multiple of the VAE's scale, 8 for SD)."}),
    "preview_height": ("INT", {"default": 512, "min": 16, "max": MAX_SIZE, "step": 8, "tooltip": "Preview height "
                               "in pixels (a multiple of the VAE's scale, 8 for SD)."}),
}
_SOCKETS = ("preview_vae", "preview_positive", "preview_negative")
_DEFAULTS = {key: spec[1]["default"] for key, spec in PREVIEW_INPUTS.items() if key not in _SOCKETS}


def take_preview_inputs(inputs: dict) -> dict:
    """Remove the preview inputs from a node's input lists (INPUT_IS_LIST) and return them: the
    conditionings as lists (one entry per prompt), the VAE and widgets unwrapped, defaults filled."""
    taken = {key: inputs.pop(key) for key in list(inputs) if key in PREVIEW_INPUTS}
    options = {key: taken[key][0] if key in taken else default for key, default in _DEFAULTS.items()}
    return {"vae": taken["preview_vae"][0] if taken.get("preview_vae") else None,
            "positives": list(taken.get("preview_positive") or []),
            "negatives": list(taken.get("preview_negative") or []), **options}


@dataclass(frozen=True)
class PreviewRequest:
    vae: object
    prompts: list[tuple[list, list]]  # (positive, negative) per row
    every: int
    sampling: SamplingSettings


def preview_request(inputs: dict, model) -> PreviewRequest | None:
    """The checked preview request, or None when previews are off. Raises TrainingError (before
    anything is loaded or written) when the inputs cannot be drawn with this model."""
    vae, positives, negatives = inputs["vae"], inputs["positives"], inputs["negatives"]
    if vae is None and not positives and not negatives:
        return None
    if vae is None:
        raise TrainingError("preview prompts are connected but preview_vae is not: connect the VAE that decodes "
                            "the previews (or disconnect the preview prompts)")
    if not positives:
        raise TrainingError("preview_vae is connected but preview_positive is not: connect a CLIP Text Encode "
                            "with the prompt to preview (or disconnect the VAE)")
    for label, conditionings in (("preview_positive", positives), ("preview_negative", negatives)):
        for conditioning in conditionings:
            _check_conditioning(conditioning, label, model)
    if len(negatives) not in (0, 1, len(positives)):
        raise TrainingError(f"got {len(negatives)} preview_negative conditionings for {len(positives)} preview "
                            "prompts: give one for all, or one per prompt")
    sampling = SamplingSettings(seed=int(inputs["preview_seed"]), steps=int(inputs["preview_steps"]),
                                cfg=float(inputs["preview_cfg"]), sampler=inputs["preview_sampler"],
                                scheduler=inputs["preview_scheduler"], width=int(inputs["preview_width"]),
                                height=int(inputs["preview_height"]))
    _check_sampling(sampling, vae, model)
    every = int(inputs["preview_every"])
    if every < 0:
        raise TrainingError(f"preview_every must be 0 (off) or a number of steps, got {every}")
    if every == 0:
        # Inputs are connected (checked above) yet nothing will be drawn: say so where the user looks.
        logger.warning("preview_vae and preview prompts are connected but preview_every is 0: no previews")
        return None
    pairs = [(positive, negatives[i] if len(negatives) > 1 else negatives[0] if negatives else zeroed(positive))
             for i, positive in enumerate(positives)]
    return PreviewRequest(vae=vae, prompts=pairs, every=every, sampling=sampling)


def _check_conditioning(conditioning, label: str, model) -> None:
    entries_ok = isinstance(conditioning, (list, tuple)) and len(conditioning) > 0 and all(
        isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], torch.Tensor)
        for entry in conditioning)
    if not entries_ok:
        raise TrainingError(f"{label} is not a conditioning (connect a CLIP Text Encode)")
    context_widths = attention_key_widths(model)["attn2"]
    width = conditioning[0][0].shape[-1]
    if context_widths and width not in context_widths:
        raise TrainingError(f"{label} is {width} wide but this model's text context is "
                            f"{', '.join(map(str, sorted(context_widths)))} wide: encode it with this model's CLIP")


def _check_sampling(sampling: SamplingSettings, vae, model) -> None:
    model_channels = model.get_model_object("latent_format").latent_channels
    vae_channels = getattr(vae, "latent_channels", None)
    if vae_channels != model_channels:
        raise TrainingError(f"preview_vae makes {vae_channels}-channel latents but this model uses "
                            f"{model_channels}: connect the VAE that belongs to this model")
    ratio = vae.spacial_compression_encode()
    for label, size in (("preview_width", sampling.width), ("preview_height", sampling.height)):
        if not (ratio <= size <= MAX_SIZE and size % ratio == 0):
            raise TrainingError(f"{label} {size} cannot be drawn: this model takes sizes that are multiples of "
                                f"{ratio} (its VAE's scale) from {ratio} to {MAX_SIZE}")
    if sampling.sampler not in comfy.samplers.KSampler.SAMPLERS:
        raise TrainingError(f"preview_sampler {sampling.sampler!r} is not one of ComfyUI's samplers")
    if sampling.scheduler not in comfy.samplers.KSampler.SCHEDULERS:
        raise TrainingError(f"preview_scheduler {sampling.scheduler!r} is not one of ComfyUI's schedulers")
    if sampling.steps < 1 or not math.isfinite(sampling.cfg):
        raise TrainingError(f"preview_steps ({sampling.steps}) must be at least 1 and preview_cfg "
                            f"({sampling.cfg}) a finite number")


class TrainingPreviews:
    """Draws, shows, saves and collects the previews of one training run."""

    def __init__(self, request: PreviewRequest, name: str, progress):
        self.request = request
        self.name = name
        self.progress = progress  # TrainingProgress: shows each picture on the node
        self.subfolder = preview_subfolder(name)
        self.directory = os.path.join(folder_paths.get_output_directory(), *self.subfolder.split("/"))
        self.columns: list[torch.Tensor] = []  # uint8 [prompts, H, W, 3] per drawn step
        self.files: list[dict] = []  # ComfyUI image references, for the node's UI

    def draw_base(self, model) -> None:
        """The pictures of the model without the network (strength 0), drawn before training."""
        with torch.no_grad():
            self._record(BASE_LABEL, draw_pictures(model, self.request.vae, self.request.prompts,
                                                   self.request.sampling))

    def training_callbacks(self, patcher, patch) -> dict:
        """TrainingCallbacks fields that draw with the training clone `patcher` (whose `patch`
        runs the network at strength 1) inside hn_core's training pause."""
        def on_preview(_network, report) -> None:
            try:
                with _context_shared_per_call(patcher, patch):
                    pictures = draw_pictures(patcher, self.request.vae, self.request.prompts, self.request.sampling)
            finally:
                patch.share_context(None)  # nothing computed here may reach a training step
                load_for_training(patcher)  # decoding may have moved the training clone out of the way
            self._record(report.step, pictures)
        return {"on_preview": on_preview, "preview_every": self.request.every}

    def grid(self) -> torch.Tensor:
        return preview_grid(self.columns)

    def _record(self, step, pictures: torch.Tensor) -> None:
        pixels = (pictures.clamp(0, 1) * 255).round().to(torch.uint8)
        self.columns.append(pixels)
        for index, picture in enumerate(pixels):
            image = Image.fromarray(np.ascontiguousarray(picture.numpy()))
            file_name = preview_file_name(self.name, step, index)
            _write_png(os.path.join(self.directory, file_name), image, self.name, step, index)
            self.files.append({"filename": file_name, "subfolder": self.subfolder, "type": "output"})
            self.progress.show_picture(image, args.preview_size)
        logger.info("hypernetwork %s: previews of step %s saved in %s", self.name, step, self.directory)


@contextlib.contextmanager
def _context_shared_per_call(patcher, patch) -> Iterator[None]:
    """While sampling with the training clone, give each model call's text context to the patch
    first (as training does), so the network runs on it once per call instead of once per layer."""
    def share_context(executor, *args, **kwargs):
        patch.share_context(args[2] if len(args) > 2 else kwargs.get("context"))  # (x, timesteps, context, ...)
        return executor(*args, **kwargs)

    wrapper_type = comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL
    patcher.add_wrapper_with_key(wrapper_type, _WRAPPER_KEY, share_context)
    try:
        yield
    finally:
        patcher.remove_wrappers_with_key(wrapper_type, _WRAPPER_KEY)


def _write_png(path: str, image: Image.Image, name: str, step, index: int) -> None:
    info = PngInfo()
    info.add_text("hypernetwork", name)
    info.add_text("hypernetwork_step", str(step))
    info.add_text("preview_prompt_index", str(index))
    atomic_write(path, lambda f: image.save(f, format="PNG", pnginfo=info, compress_level=4))


def preview_outputs(previews: TrainingPreviews | None) -> tuple[torch.Tensor, list[dict]]:
    """(the grid IMAGE, the saved files for the node's UI); without previews an empty IMAGE batch."""
    if previews is None or not previews.columns:
        return torch.zeros(0, 64, 64, 3), []
    return previews.grid(), list(previews.files)
