"""Train Hypernetwork's work: from the node's inputs to a trained network, its losses, snapshots and previews.

The training loop itself is hn_core.training.train; this wires it to ComfyUI: the frozen training clone, the
model call, the progress bar and cancel button, snapshots into models/hypernetworks, previews."""
from __future__ import annotations

import logging
import os
from dataclasses import replace

import torch

import comfy.model_management
import folder_paths

from ...hn_core import Hypernetwork, HypernetworkInfo, ScheduledHypernetwork, as_scheduled
from ...hn_core.training import (TrainingCallbacks, TrainingData, TrainingError, TrainingSettings,
                                 attach_optimizer_state, build_config, check_plan, copy_for_training, parse_dims, train,
                                 write_snapshot)
from ..apply.apply_network import apply_hypernetwork
from ..apply.model_attention import attention_key_widths
from ..files.optimizer_state import optimizer_state_for
from .inputs import collect_training_items
from .model_call import ModelCall, discrete_sigmas, prediction_target
from .previews import TrainingPreviews, preview_outputs, preview_request
from .progress import TrainingProgress
from .session import compute_dtype_of, training_clone

logger = logging.getLogger(__name__)


def run_training(model, latents, conditioning, hypernetwork, unique_id, captioning, preview_inputs, *, name,
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
    patched = apply_hypernetwork(model, trained, 1.0)
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
