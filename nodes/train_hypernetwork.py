"""TrainHypernetwork: train (or continue) an A1111 hypernetwork on latents + conditioning."""
from __future__ import annotations

import torch

from ..hn_core import ACTIVATIONS, WEIGHT_INITIALIZATIONS
from ..hn_core.training import CLIP_MODES, DROPOUT_CHOICES, OPTIMIZERS
from ..hn_comfy.training.captions import caption_inputs, caption_mode_from
from ..hn_comfy.training.previews import PREVIEW_INPUTS, take_preview_inputs
from ..hn_comfy.training.run import run_training
from ..hn_comfy.training.session import TRAINING_DTYPES
from ..hn_comfy.ui.types import HYPERNETWORK, TRAINING_CATEGORY

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
            return run_training(model[0], latents, conditioning, hypernetwork[0] if hypernetwork else None,
                                unique_id[0] if unique_id else None, captioning, preview_inputs, **widgets)
