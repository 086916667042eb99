"""Assemble the demo checkpoint: trained UNet + trained TAESD autoencoder + seeded random CLIP-L.

The project trains the UNet and the autoencoder (``tools/train_demo_model.py``) and commits their
fp16 weights under ``assets/demo_model/``. The CLIP-L text encoder is not trained: its weights are
drawn from numpy's frozen ``RandomState`` stream from ``CLIP_SEED``, so every machine makes the
same bytes (a test checks the hash). A fixed random encoder still maps each caption to its own
conditioning, and the UNet was trained on exactly those conditionings.

Keys follow an original SD1.5 file (``model.diffusion_model.*``, ``cond_stage_model.transformer.*``,
``first_stage_model.*``): ComfyUI's ``CheckpointLoaderSimple`` detects SD15 from the UNet keys and a
TAESD VAE from ``first_stage_model.taesd_decoder.*``.

Needs ComfyUI on ``sys.path`` (the model classes and key conversions are ComfyUI's).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "demo_model"
UNET_FILE = ASSETS / "unet.safetensors"
TAESD_FILE = ASSETS / "taesd.safetensors"
CLIP_SEED = 768

# One level, one res block, one transformer: ComfyUI's detector still reads SD1.5 (model_channels
# 320, context 768), and the widths a hypernetwork patches are SD1's (attn1 320, attn2 768).
UNET_CONFIG = {
    "use_checkpoint": False, "image_size": 32, "in_channels": 4, "out_channels": 4,
    "use_spatial_transformer": True, "legacy": False, "use_temporal_attention": False,
    "use_temporal_resblock": False, "adm_in_channels": None, "model_channels": 320,
    "use_linear_in_transformer": False, "context_dim": 768, "num_heads": 8,
    "num_res_blocks": [1], "channel_mult": [1], "transformer_depth": [1], "transformer_depth_middle": 1,
    "transformer_depth_output": [1, 1],
}


def model_config():
    """ComfyUI's SD15 model config for the demo UNet (fp32)."""
    import torch
    import comfy.supported_models

    config = comfy.supported_models.SD15(dict(UNET_CONFIG))
    config.set_inference_dtype(torch.float32, None)
    return config


def _clip_std(name: str, width: int = 768, layers: int = 12) -> float | None:
    """Initial std per CLIP weight, the usual transformer scheme; None: a constant (norms, biases)."""
    if name.endswith("token_embedding.weight"):
        return 0.02
    if name.endswith("position_embedding.weight"):
        return 0.01
    if "layer_norm" in name or name.endswith(".bias"):
        return None
    if "mlp.fc1" in name:
        return (2 * width) ** -0.5
    return width ** -0.5 * (2 * layers) ** -0.5  # attention projections and fc2: residual branches


def random_clip_state_dict() -> dict:
    """CLIP-L text encoder weights (checkpoint keys, fp16), the same bytes on every machine."""
    import torch
    import comfy.sd1_clip

    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in comfy.sd1_clip.SD1ClipModel(device="meta").state_dict().items()}
    rng = np.random.RandomState(CLIP_SEED)
    weights = {}
    for name in sorted(shapes):
        if "position_ids" in name:
            continue
        std = _clip_std(name)
        if std is None:
            value = np.ones(shapes[name]) if name.endswith(".weight") else np.zeros(shapes[name])
        else:
            value = rng.standard_normal(shapes[name]) * std
        weights[name] = torch.from_numpy(np.asarray(value, dtype=np.float16))
    return model_config().process_clip_state_dict_for_saving(weights)


def state_dict_hash(state_dict: dict) -> str:
    """sha256 over sorted keys, shapes and fp16 bytes: what the reproducibility test compares."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].contiguous()
        digest.update(name.encode() + str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
        digest.update(tensor.view(-1).numpy().tobytes())
    return digest.hexdigest()


def checkpoint_keys(config, unet_state_dict: dict, vae_state_dict: dict, clip_checkpoint_state_dict: dict) -> dict:
    """UNet and VAE state dicts (their modules' keys) and CLIP (checkpoint keys) as one fp16 SD1.5 file.

    ComfyUI's per-model key conversions, not its ``state_dict_for_saving`` (whose signature
    changed between 0.3.x and 0.33).
    """
    import torch

    parts = {**config.process_unet_state_dict_for_saving(dict(unet_state_dict)),
             **config.process_vae_state_dict_for_saving(dict(vae_state_dict)),
             **clip_checkpoint_state_dict}
    return {k: v.detach().to(torch.float16).contiguous() for k, v in parts.items()}


def assemble(unet_state_dict: dict, taesd_state_dict: dict) -> dict:
    """The demo checkpoint (fp16) from UNet and TAESD state dicts in their modules' own keys."""
    return checkpoint_keys(model_config(), unet_state_dict, taesd_state_dict, random_clip_state_dict())


def weights_digest() -> str:
    """A short sha256 of the committed weight files (the default model's cache key)."""
    digest = hashlib.sha256()
    for path in (UNET_FILE, TAESD_FILE):
        digest.update(path.read_bytes() if path.is_file() else b"missing")
    return digest.hexdigest()[:16]


def load_trained_parts() -> tuple[dict, dict]:
    """The committed UNet and TAESD weights (module keys)."""
    from safetensors.torch import load_file

    for path in (UNET_FILE, TAESD_FILE):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the demo model's trained weights are part of the repository")
    return load_file(str(UNET_FILE)), load_file(str(TAESD_FILE))
