"""The demo model's committed parts and the world it was trained on, without running it."""
from __future__ import annotations

import dataclasses

import numpy as np
from safetensors import safe_open

from tools import demo_checkpoint, demo_dataset, shape_world, style_score


def test_committed_weights_are_fp16_small_and_say_their_recipe():
    total = 0
    for path in (demo_checkpoint.UNET_FILE, demo_checkpoint.TAESD_FILE):
        total += path.stat().st_size
        with safe_open(str(path), "np") as f:
            metadata = f.metadata()
            dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
        assert dtypes == {"F16"}, (path, dtypes)
        assert metadata["license"] == "CC0-1.0" and metadata["recipe"].startswith("tools/train_demo_model.py")
    assert total <= 60e6


def test_held_out_combinations_are_fifty_and_never_trained():
    combos = shape_world.all_combinations()
    assert len(shape_world.HELD_OUT) == 50
    assert set(shape_world.TRAINING_COMBINATIONS) | shape_world.HELD_OUT == set(combos)
    assert not set(shape_world.TRAINING_COMBINATIONS) & shape_world.HELD_OUT
    # The base model's data never holds a held-out style or combination.
    scenes = shape_world.sample_scenes(500, seed=1)
    assert {s.style for s in scenes} == set(shape_world.BASE_STYLES)
    assert not {(s.colour, s.shape, s.background) for s in scenes} & shape_world.HELD_OUT


def test_world_is_deterministic_and_captions_read_well():
    a, b = shape_world.sample_scenes(5, seed=3), shape_world.sample_scenes(5, seed=3)
    assert a == b and all(np.array_equal(shape_world.render(x), shape_world.render(y)) for x, y in zip(a, b))
    scene = shape_world.Scene("orange", "star", "white", style="outline")
    assert scene.caption == "an orange star outline on a white background"


def test_style_score_tells_the_two_held_out_styles_apart():
    pictures = [shape_world.render(s) / 255.0 for s in shape_world.sample_scenes(20, seed=9)]
    sepia = demo_dataset.style_pictures("sepia")
    blueprint = demo_dataset.style_pictures("blueprint")
    assert style_score.style_distance(sepia, sepia) < 1e-6
    base = style_score.style_distance(pictures, sepia)
    # Halfway to sepia (pixel blend) is about half the distance; blueprint is far from sepia.
    halfway = [0.5 * p + 0.5 * shape_world.render(dataclasses.replace(s, style="sepia")) / 255.0
               for p, s in zip(pictures, shape_world.sample_scenes(20, seed=9))]
    assert 0.3 * base < style_score.style_distance(halfway, sepia) < 0.7 * base
    assert style_score.style_distance(blueprint, sepia) > 0.5 * base


def test_random_clip_is_bit_reproducible(comfy_host):
    # The text encoder is not committed: it is drawn from numpy's frozen RandomState stream, and
    # the UNet was trained on its conditionings, so every machine must draw the same bytes.
    state_dict = demo_checkpoint.random_clip_state_dict()
    assert len(state_dict) == 196
    assert demo_checkpoint.state_dict_hash(state_dict) == EXPECTED_CLIP_HASH


EXPECTED_CLIP_HASH = "bf9642e6bac3290d96ebbff4072cde0a42d697edc9b0e6f9b051af568f5954dc"
