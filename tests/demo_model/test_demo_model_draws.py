"""The embedded demo model draws: checked through ComfyUI's own loader, encoder, sampler and decoder.

The checkpoint is the one the main job uses (``tools.default_model``, cached in ``out/cache``),
loaded by ``CheckpointLoaderSimple`` in the in-process host. Prompts are combinations of colour,
shape and background the model never saw in training (``shape_world.HELD_OUT``); the checker
(``drawing_checker``) knows the world's palette, not the model.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.demo_model.drawing_checker import dominant_shape_colour, high_frequency_energy
from tools import default_model, demo_checkpoint, shape_world
from tools.layout import DEFAULT_CACHE

SAMPLING = {"steps": 20, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal"}


@pytest.fixture(scope="module")
def demo_pipeline(comfy_host):
    """(model, clip, vae) of the demo checkpoint, loaded by ComfyUI's CheckpointLoaderSimple."""
    cache = Path(os.environ.get("HN_E2E_CACHE") or DEFAULT_CACHE)
    path, _ = default_model.ensure_default_model(comfy_host.root, cache)
    link = comfy_host.model_dir("checkpoints") / path.name
    if not link.exists():
        link.symlink_to(path)
    loader = comfy_host.node_class("CheckpointLoaderSimple")()
    with torch.inference_mode():
        model, clip, vae = loader.load_checkpoint(path.name)[:3]
    return model, clip, vae


def draw(comfy_host, pipeline, captions: list[str], seed: int = 0) -> list[np.ndarray]:
    """One 64x64 picture per caption, as CLIPTextEncode -> KSampler -> VAEDecode make it (uint8 RGB)."""
    model, clip, vae = pipeline
    nodes = comfy_host.nodes
    pictures = []
    with torch.inference_mode():
        negative = nodes.CLIPTextEncode().encode(clip, "")[0]
        latent = nodes.EmptyLatentImage().generate(64, 64, 1)[0]
        for index, caption in enumerate(captions):
            positive = nodes.CLIPTextEncode().encode(clip, caption)[0]
            samples = nodes.common_ksampler(model, seed + index, positive=positive, negative=negative,
                                            latent=latent, **SAMPLING)[0]
            image = nodes.VAEDecode().decode(vae, samples)[0]
            pictures.append((image[0].float().clamp(0, 1).numpy() * 255).round().astype(np.uint8))
    return pictures


def test_checkpoint_is_sd15_with_a_taesd_vae(demo_pipeline):
    model, _clip, vae = demo_pipeline
    assert type(model.model.model_config).__name__ == "SD15"
    assert type(vae.first_stage_model).__name__ == "TAESD"
    params = sum(p.numel() for p in model.model.diffusion_model.parameters())
    assert 20e6 < params < 30e6


def test_draws_the_captioned_colour_for_unseen_combinations(comfy_host, demo_pipeline):
    combos = sorted(shape_world.HELD_OUT)
    assert len(combos) == 50 and not set(combos) & set(shape_world.TRAINING_COMBINATIONS)
    captions = [shape_world.Scene(*c).caption for c in combos]
    pictures = draw(comfy_host, demo_pipeline, captions)
    found = [dominant_shape_colour(p) for p in pictures]
    right = [f == c[0] for f, c in zip(found, combos)]
    wrong = [(caption, f) for caption, f, ok in zip(captions, found, right) if not ok]
    assert sum(right) >= 40, f"{sum(right)}/50 right; wrong: {wrong}"


def test_pictures_are_not_noise(comfy_host, demo_pipeline):
    captions = [shape_world.Scene(*c).caption for c in sorted(shape_world.TRAINING_COMBINATIONS)[::43]]
    drawn = [high_frequency_energy(p) for p in draw(comfy_host, demo_pipeline, captions, seed=100)]
    random_model = random_weight_pipeline(comfy_host, demo_pipeline)
    noise = [high_frequency_energy(p) for p in draw(comfy_host, random_model, captions, seed=100)]
    # A random-weight UNet and decoder of the same architecture paint speckle; the demo model flat shapes.
    assert np.median(drawn) < 0.05 and np.median(drawn) * 5 < np.median(noise), (drawn, noise)


def random_weight_pipeline(comfy_host, demo_pipeline):
    """The demo architecture with random UNet and TAESD weights, through the same loader."""
    from safetensors.torch import save_file

    import comfy.taesd.taesd
    from tools.train_demo_model import new_unet
    from tools.default_model import randomize_

    unet = new_unet().diffusion_model
    taesd = comfy.taesd.taesd.TAESD(latent_channels=4)
    randomize_(taesd, 3)
    name = "hn-test-random-demo-architecture.safetensors"
    path = comfy_host.model_dir("checkpoints") / name
    if not path.exists():
        save_file(demo_checkpoint.assemble(unet.state_dict(), taesd.state_dict()), str(path))
    with torch.inference_mode():
        return comfy_host.node_class("CheckpointLoaderSimple")().load_checkpoint(name)[:3]
