"""TrainHypernetwork: train (or continue) an A1111 hypernetwork on latents + conditioning."""
from __future__ import annotations

import logging
import os
from dataclasses import replace

import torch

import comfy.model_management
import folder_paths

from ..hn_core import (ACTIVATIONS, WEIGHT_INITIALIZATIONS, Hypernetwork, HypernetworkInfo, ScheduledHypernetwork,
                       as_scheduled)
from ..hn_core.training import (CLIP_MODES, DROPOUT_CHOICES, OPTIMIZERS, TrainingCallbacks, TrainingData,
                                TrainingError, TrainingSettings, attach_optimizer_state, build_config, check_plan,
                                copy_for_training, parse_dims, train, write_snapshot)
from .apply_hypernetwork import ApplyHypernetwork
from .model_attention import attention_key_widths
from .optimizer_state_lookup import optimizer_state_for
from .training_captions import caption_inputs, caption_mode_from
from .training_inputs import collect_training_items
from .training_model_call import ModelCall, discrete_sigmas, prediction_target
from .training_previews import PREVIEW_INPUTS, TrainingPreviews, preview_outputs, preview_request, take_preview_inputs
from .training_progress import TrainingProgress
from .training_session import TRAINING_DTYPES, compute_dtype_of, training_clone
from .types import HYPERNETWORK

logger = logging.getLogger(__name__)

TRAINING_CATEGORY = "training/hypernetworks"
NEW_NETWORK = "Only for a new hypernetwork (ignored when one is connected to continue)."


class TrainHypernetwork:
    DESCRIPTION = ("Trains an AUTOMATIC1111-compatible hypernetwork on your images (VAE-encoded latents + "
                   "their prompts), or continues one, with A1111's options. Only the hypernetwork learns; "
                   "the model is left unchanged.")
    CATEGORY = TRAINING_CATEGORY
    INPUT_IS_LIST = True  # like TrainLoraNode: accepts per-image lists from dataset nodes
    RETURN_TYPES = ("MODEL", HYPERNETWORK, "LOSS_MAP", "INT", "IMAGE")
    RETURN_NAMES = ("model", "hypernetwork", "loss_map", "steps", "preview_grid")
    OUTPUT_TOOLTIPS = ("The input model with the trained hypernetwork applied (strength 1).",
                       "The trained hypernetwork, for Save Hypernetwork or Apply Hypernetwork.",
                       "Loss per step, for ComfyUI's Plot Loss Graph node.",
                       "The hypernetwork's total trained steps.",
                       "The previews as one picture: a row per preview prompt, a column per step (base model "
                       "first), for Save Image. Empty when previews are off.")
    FUNCTION = "train"

    @classmethod
    def INPUT_TYPES(cls):
        activations = ["linear", *sorted(a for a in ACTIVATIONS if a != "linear")]
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model to train through (it is not changed)."}),
                "latents": ("LATENT", {"tooltip": "The training images, encoded with VAE Encode (a batch, or "
                                                  "one per image from a dataset loader)."}),
                "name": ("STRING", {"default": "my_hypernetwork", "tooltip": "Stored in the file; snapshots are "
                                    "saved as models/hypernetworks/<name>/<name>-<step>.pt."}),
                "steps": ("INT", {"default": 1000, "min": 1, "max": 10_000_000, "tooltip": "Total steps to reach "
                                  "(a continued hypernetwork counts its earlier steps). A step is one optimizer "
                                  "update of batch size x gradient accumulation images."}),
                "learning_rate": ("STRING", {"default": "0.00001", "tooltip": "A1111 schedule: a rate, or "
                                             "'5e-5:100, 5e-6:1500, 1e-7' (rate until step). Training stops "
                                             "when the list runs out."}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 1024, "tooltip": "Images per micro-batch."}),
                "gradient_accumulation": ("INT", {"default": 1, "min": 1, "max": 1024, "tooltip": "Micro-batches "
                                          "per optimizer step; the logged loss is their mean."}),
                "optimizer": (list(OPTIMIZERS), {"default": "AdamW", "tooltip": "torch.optim optimizer."}),
                "weight_decay": ("FLOAT", {"default": 0.01, "min": 0.0, "max": 10.0, "step": 0.001,
                                           "tooltip": "Weight decay (0.01 is AdamW's default)."}),
                "gradient_clipping": (list(CLIP_MODES), {"default": "off", "tooltip": "Clip gradients by value or "
                                      "by total norm (applied to the real, unscaled gradients)."}),
                "clip_value": ("STRING", {"default": "0.1", "tooltip": "The clip limit; accepts the same schedule "
                               "syntax as the learning rate."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "tooltip": "Seeds the new "
                         "weights, the image order, timesteps, noise and dropout. Same seed, same result."}),
                "training_dtype": (list(TRAINING_DTYPES), {"default": "auto", "tooltip": "Precision the model "
                                   "computes in (auto = the model's own). The hypernetwork keeps fp32 weights; "
                                   "fp16 uses loss scaling."}),
                "gradient_checkpointing": ("BOOLEAN", {"default": False, "tooltip": "Recompute activations in the "
                                           "backward pass: much less memory, about a third more time."}),
                "snapshot_every": ("INT", {"default": 0, "min": 0, "max": 10_000_000, "tooltip": "Save "
                                   "<name>-<step>.pt (+ .optim) every N steps; 0 = never."}),
                "dims": ("STRING", {"default": "auto", "tooltip": "Widths to train, e.g. '768, 320, 640, 1280'; "
                                    "auto = every width this model's attention uses. " + NEW_NETWORK}),
                "layer_structure": ("STRING", {"default": "1, 2, 1", "tooltip": "Layer widths as multiples of the "
                                               "dim, starting and ending with 1. " + NEW_NETWORK}),
                "activation": (activations, {"default": "linear", "tooltip": "Activation after each layer. "
                                             + NEW_NETWORK}),
                "weight_init": (list(WEIGHT_INITIALIZATIONS), {"default": "Normal", "tooltip": "Initial weights. "
                                + NEW_NETWORK}),
                "layer_norm": ("BOOLEAN", {"default": False, "tooltip": "Add layer normalization. " + NEW_NETWORK}),
                "dropout": (list(DROPOUT_CHOICES), {"default": "off", "tooltip": "A1111's dropout (0.3, training "
                            "only) after hidden layers, optionally after the last hidden one too. " + NEW_NETWORK}),
                "dropout_structure": ("STRING", {"default": "", "tooltip": "Explicit dropout per layer-structure "
                                      "entry, e.g. '0, 0.05, 0.15, 0'; overrides 'dropout'. " + NEW_NETWORK}),
                "activate_output": ("BOOLEAN", {"default": False, "tooltip": "Apply the activation to the last "
                                    "layer too. " + NEW_NETWORK}),
                "base_model_name": ("STRING", {"default": "", "tooltip": "Optional: the checkpoint's name, stored "
                                    "in the file as sd_checkpoint_name (ComfyUI's MODEL does not carry it)."}),
            },
            "optional": {
                "conditioning": ("CONDITIONING", {"tooltip": "The prompts: one shared by all images, or one per "
                                                             "image in the same order. Leave unconnected when a "
                                                             "CLIP with captions is connected."}),
                "hypernetwork": (HYPERNETWORK, {"tooltip": "Continue training this hypernetwork (its step count, "
                                 "schedule position and saved optimizer state carry on)."}),
                **caption_inputs(),
                **PREVIEW_INPUTS,
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def train(self, model, latents, conditioning=None, hypernetwork=None, unique_id=None, clip=None, captions=None,
              **widgets):
        preview_inputs = take_preview_inputs(widgets)
        widgets = {key: value[0] for key, value in widgets.items()}  # INPUT_IS_LIST wraps every widget
        captioning = caption_mode_from(widgets, clip[0] if clip else None, captions, str(widgets["name"]).strip())
        with torch.inference_mode(False):
            return self._train(model[0], latents, conditioning, hypernetwork[0] if hypernetwork else None,
                               unique_id[0] if unique_id else None, captioning, preview_inputs, **widgets)

    def _train(self, model, latents, conditioning, hypernetwork, unique_id, captioning, preview_inputs, *, name,
               steps, learning_rate, batch_size, gradient_accumulation, optimizer, weight_decay, gradient_clipping,
               clip_value, seed, training_dtype, gradient_checkpointing, snapshot_every, dims, layer_structure,
               activation, weight_init, layer_norm, dropout, dropout_structure, activate_output, base_model_name):
        name = _checked_name(name)
        preview = preview_request(preview_inputs, model)  # checked before anything is loaded or written
        items = collect_training_items(latents, conditioning, captioning.captions if captioning else None)
        widths = attention_key_widths(model)
        model_dims = widths["attn1"] | widths["attn2"]
        network, resume_from = _network_to_train(hypernetwork, model_dims, name, base_model_name, seed, dims,
                                                 layer_structure, activation, weight_init, layer_norm, dropout,
                                                 dropout_structure, activate_output)
        settings = TrainingSettings(
            max_steps=steps, learning_rate=learning_rate, batch_size=batch_size,
            gradient_accumulation=gradient_accumulation, optimizer=optimizer, weight_decay=weight_decay,
            clip_mode=gradient_clipping, clip_value=clip_value, seed=seed, snapshot_every=snapshot_every)
        check_plan(settings, network.info.step)  # a bad schedule or step count fails before any loading
        progress = TrainingProgress(network.info.step, steps, unique_id)
        previews = TrainingPreviews(preview, name, progress) if preview else None
        if previews:
            previews.draw_base(model)

        with training_clone(model, network, training_dtype, gradient_checkpointing) as (patcher, patch):
            settings = _with_loss_scaling(settings, compute_dtype_of(patcher, training_dtype))
            model_sampling = patcher.get_model_object("model_sampling")
            device = patcher.load_device
            clean = [patcher.model.process_latent_in(latent[None].to(device))[0].float() for latent in items.latents]
            prompts = captioning.step_prompts(items.captions, seed) if captioning else None
            model_call = ModelCall(patcher, patch, clean, items.conditionings, prompts)
            data = TrainingData(
                latents=clean, sigmas=discrete_sigmas(model_sampling),
                noise_scaling=lambda sigma, noise, latent: model_sampling.noise_scaling(sigma, noise, latent),
                predict=model_call, target=prediction_target(model_sampling), prepare_step=model_call.prepare_step)
            callbacks = TrainingCallbacks(
                check_cancel=comfy.model_management.throw_exception_if_processing_interrupted,
                on_step=progress, on_snapshot=lambda net, state: _snapshot(net, state, name),
                **(previews.training_callbacks(patcher, patch) if previews else {}))
            result = train(network, data, settings, callbacks, resume_from)

        attach_optimizer_state(network, result.optimizer_state)
        trained = ScheduledHypernetwork(network)
        (patched,) = ApplyHypernetwork().apply(model, trained, 1.0)
        logger.info("hypernetwork %s trained to step %d (last loss %s)", name, network.info.step,
                    f"{result.losses[-1]:.5f}" if result.losses else "n/a")
        grid, preview_files = preview_outputs(previews)
        return {"ui": {"images": preview_files},
                "result": (patched, trained, {"loss": result.losses}, network.info.step, grid)}


def _network_to_train(hypernetwork, model_dims, name, base_model_name, seed, dims, layer_structure, activation,
                      weight_init, layer_norm, dropout, dropout_structure, activate_output):
    """(a private network to train, optimizer state to resume or None): a copy of the connected
    hypernetwork, or a new one built from the widgets."""
    info_changes = {"name": name}
    if base_model_name.strip():
        info_changes["sd_checkpoint_name"] = base_model_name.strip()
    if hypernetwork is not None:
        source = as_scheduled(hypernetwork).network
        _check_dims_fit(source.dims, model_dims)
        return copy_for_training(source, **info_changes), optimizer_state_for(source)
    config = build_config(layer_structure, activation, weight_init, layer_norm, dropout, dropout_structure,
                          activate_output)
    info = HypernetworkInfo(name=name, sd_checkpoint_name=info_changes.get("sd_checkpoint_name"))
    return Hypernetwork.create(parse_dims(dims, model_dims), config, info, seed=seed), None


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name or name in (".", "..") or any(c in name for c in '/\\:*?"<>|'):
        raise TrainingError(f"name {name!r} must be a plain file name (no folders or special characters)")
    return name


def _check_dims_fit(dims, model_dims) -> None:
    used = set(dims) & set(model_dims)
    if not used:
        raise TrainingError(f"the hypernetwork's dims {', '.join(map(str, dims))} match none of this model's "
                            f"attention widths ({', '.join(map(str, sorted(model_dims)))}): wrong base model?")
    if used != set(dims):
        logger.warning("hypernetwork dims %s are not used by this model and will not train",
                       sorted(set(dims) - used))


def _with_loss_scaling(settings: TrainingSettings, compute_dtype: torch.dtype) -> TrainingSettings:
    return replace(settings, loss_scaling=compute_dtype == torch.float16)


def _snapshot(network, state, name: str) -> None:
    directory = os.path.join(folder_paths.get_folder_paths("hypernetworks")[0], name)
    path = write_snapshot(network, state, directory, name)
    logger.info("saved hypernetwork snapshot %s", path)
