"""Prepare a clone of the user's model for training through it, and leave nothing behind.

The input MODEL is never changed: training runs on a clone with the training patch. What the
clone shares with the input (the UNet's modules) is only touched reversibly, and restored even
when training fails or is cancelled: requires_grad flags, and gradient checkpointing's wrapped
forwards. The one lasting change is value-preserving: weights that are inference tensors get
ordinary storage (see hn_core.training.frozen_base), since autograd cannot use them otherwise.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

import torch

import comfy.model_management

from ...hn_core import Hypernetwork
from ...hn_core.training import TrainingPatch, frozen, gradient_checkpointing, materialize_inference_tensors

logger = logging.getLogger(__name__)

TRAINING_DTYPES = {"auto": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@contextlib.contextmanager
def training_clone(model, network: Hypernetwork, training_dtype: str, checkpointing: bool) -> Iterator[tuple]:
    """Yields (patcher, patch): a loaded clone of `model` that trains `network` through its attention."""
    patcher = model.clone()
    patch = TrainingPatch(network)
    patcher.set_model_attn1_patch(patch)
    patcher.set_model_attn2_patch(patch)
    compute_dtype = TRAINING_DTYPES[training_dtype]
    if compute_dtype is not None:
        patcher.set_model_compute_dtype(compute_dtype)
    try:
        load_for_training(patcher)
        frozen_modules = [patcher.model, *modules_in_patches(patcher, exclude=patch)]
        count = materialize_inference_tensors([*frozen_modules, network])
        if count:
            logger.info("gave %d inference-mode weights ordinary storage so that autograd can use them", count)
        with frozen(frozen_modules), gradient_checkpointing(patcher.model.diffusion_model, checkpointing):
            yield patcher, patch
    finally:
        patch.release()


def load_for_training(patcher) -> None:
    """Like ComfyUI's TrainLoraNode: make room for training and load the whole model (again, after
    something else such as a preview's VAE was loaded meanwhile; a no-op when nothing moved)."""
    comfy.model_management.load_models_gpu([patcher], memory_required=1e20, force_full_load=True)


def compute_dtype_of(patcher, training_dtype: str) -> torch.dtype:
    chosen = TRAINING_DTYPES[training_dtype]
    if chosen is not None:
        return chosen
    return getattr(patcher.model, "manual_cast_dtype", None) or patcher.model_dtype()


def modules_in_patches(patcher, exclude=None) -> list[torch.nn.Module]:
    """torch modules held by the model's other attention patches (e.g. a hypernetwork applied
    before this one): the backward runs through them too, so they are frozen and materialised."""
    found: list[torch.nn.Module] = []
    options = patcher.model_options.get("transformer_options", {})
    for patch_list in options.get("patches", {}).values():
        for patch in patch_list:
            if patch is not exclude:
                found.extend(_modules_of(patch))
    return found


def _modules_of(value, depth: int = 0) -> list[torch.nn.Module]:
    if isinstance(value, torch.nn.Module):
        return [value]
    if depth >= 2:
        return []
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, (list, tuple)):
        children = list(value)
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        children = list(vars(value).values())
    else:
        return []
    return [module for child in children for module in _modules_of(child, depth + 1)]
