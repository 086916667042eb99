"""Inputs TrainHypernetwork cannot train on fail early, with a message that says what to change."""
from __future__ import annotations

import pytest
import torch

from tests.training import comfy_training as ct


@pytest.fixture
def setup(comfy_host):
    return comfy_host, ct.loader_built("sd1"), *ct.dataset(count=4)


def _train(setup, latents=None, conditioning=None, **widgets):
    host, model, default_latents, default_conditioning = setup
    return ct.train(host, model, default_latents if latents is None else latents,
                    default_conditioning if conditioning is None else conditioning, **widgets)


def test_no_images(setup):
    with torch.inference_mode():
        empty = [{"samples": torch.zeros(0, 4, 8, 8)}]
    with pytest.raises(ValueError, match="zero images"):
        _train(setup, latents=empty, steps=2)


def test_empty_latents_instead_of_encoded_images(setup):
    with torch.inference_mode():
        blank = [{"samples": torch.zeros(4, 4, 8, 8)}]
    with pytest.raises(ValueError, match="all zeros .*VAE Encode"):
        _train(setup, latents=blank, steps=2)


def test_latents_with_nan_from_a_broken_vae(setup):
    with torch.inference_mode():
        latents = torch.ones(4, 4, 8, 8)
        latents[2, 1, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="1 of 4 training latents contain NaN"):
        _train(setup, latents=[{"samples": latents}], steps=2)


def test_conditioning_count_matching_neither_one_nor_the_images(setup):
    conditioning = setup[3][:3]
    with pytest.raises(ValueError, match="got 3 conditionings for 4 images"):
        _train(setup, conditioning=conditioning, steps=2)


def test_steps_not_beyond_the_resumed_step(setup):
    host, model, latents, conditioning = setup
    trained = ct.train(host, model, latents, conditioning, steps=3, dims="64", learning_rate="1e-3")[1]
    with pytest.raises(ValueError, match=r"steps \(3\) must be greater than the 3 steps"):
        ct.train(host, model, latents, conditioning, hypernetwork=trained, steps=3)


@pytest.mark.parametrize("dims, fragment", [
    ("999", "dims 999 are not used by this model"),
    ("768, 1024", "dims 1024 are not used by this model: its attention layers use 32, 64, 128, 768"),
    ("768, big", "not a positive whole number"),
])
def test_dims_the_model_does_not_use(setup, dims, fragment):
    with pytest.raises(ValueError, match=fragment):
        _train(setup, dims=dims, steps=2)


def test_continuing_a_hypernetwork_made_for_another_model_family(setup, comfy_host):
    hn_core = comfy_host.pack_module("hn_core")
    sd2_network = hn_core.Hypernetwork.create((1024,), hn_core.HypernetworkConfig(), seed=0)
    with pytest.raises(ValueError, match="match none of this model's attention widths"):
        _train(setup, hypernetwork=hn_core.ScheduledHypernetwork(sd2_network), steps=2)


@pytest.mark.parametrize("widgets, fragment", [
    ({"learning_rate": "fast"}, "not a number"),
    ({"learning_rate": "1e-3:5", "steps": 10, "clip_value": "x", "gradient_clipping": "norm"}, "gradient clip"),
    ({"name": "../evil"}, "plain file name"),
    ({"layer_structure": "2, 2, 1"}, "must start and end with 1"),
])
def test_bad_widget_text(setup, widgets, fragment):
    with pytest.raises(ValueError, match=fragment):
        _train(setup, **{"steps": 2, **widgets})
