"""Issue 11 part 3: Hypernetwork to LoRA and Bake Hypernetwork, against Apply Hypernetwork.

Files go where a user's go (models/loras, the output folder) and come back through ComfyUI's own
loaders (LoraLoaderModelOnly, the checkpoint loader). Errors are measured on the UNet output
(epsilon) relative to the hypernetwork's effect, ``||export - apply|| / ||apply - plain||``, at the
inputs the node documents (seeded latent, mid-schedule sigma, the given conditioning), so the
error a node reports can be checked against an independent measurement here.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.inference import lora_export_support as le
from tests.inference import support as s
from tests.reference.a1111_reference import make_raw_a1111_dict

EXACT_TOL = 1e-4  # of the effect (the bound); fp32 rounding of W + dW is ~1e-6 here
MIN_EFFECT = 1e-3  # the network must visibly change the output, else agreement proves nothing


def _linear(comfy_host, hypernetwork_dir, dims, seed=11, std=0.03):
    return s.load_raw(comfy_host, hypernetwork_dir, f"export_linear_{seed}_{len(dims)}.pt",
                      make_raw_a1111_dict(dims=dims, activation="linear", std=std, seed=seed))


def _nonlinear(comfy_host, hypernetwork_dir, dims, seed=12):
    return s.load_raw(comfy_host, hypernetwork_dir, f"export_relu_{seed}_{len(dims)}.pt",
                      make_raw_a1111_dict(dims=dims, activation="relu", std=0.03, seed=seed))


MODELS = {"sd1": (lambda request: request.getfixturevalue("tiny_model"), le.TINY_SD1_DIMS),
          "sdxl": (lambda request: le.tiny_sdxl(), le.TINY_SDXL_DIMS)}


@pytest.fixture(params=sorted(MODELS))
def shaped(request, comfy_host):
    make, dims = MODELS[request.param]
    return request.param, make(request), dims


def test_linear_full_rank_lora_equals_apply(comfy_host, hypernetwork_dir, shaped):
    family, model, dims = shaped
    hypernetwork = _linear(comfy_host, hypernetwork_dir, dims)
    positive, latent, x = le.probe(model)
    name, report = le.to_lora(comfy_host, model, hypernetwork, f"exact_{family}", conditioning=positive,
                              latent=latent, seed=3)
    path = comfy_host.model_dir("loras") / name
    keys = _keys(path)
    # kohya names of the family: diffusers layout for SD1, SGM layout for SDXL
    assert any(k.startswith("lora_unet_down_blocks_") for k in keys) == (family == "sd1")
    assert any(k.startswith("lora_unet_input_blocks_") for k in keys) == (family == "sdxl")

    sigma = le.mid_sigma(model)
    applied = s.apply_node(comfy_host, model, hypernetwork, 1.0, speed_path=False)
    loaded = le.lora_model(comfy_host, model, name)
    effect = s.rel_err(le.eps(applied, x, sigma, positive), le.eps(model, x, sigma, positive))
    error = le.effect_error(model, loaded, applied, x, sigma, positive)
    assert effect > MIN_EFFECT and error <= EXACT_TOL, (effect, error)
    assert le.reported_unet_error(path) <= EXACT_TOL and "one UNet step" in report


def test_dropped_value_bias_is_reported_as_measured(comfy_host, hypernetwork_dir, tiny_model):
    hypernetwork = _linear(comfy_host, hypernetwork_dir, le.TINY_SD1_DIMS, seed=13)
    positive, latent, x = le.probe(tiny_model)
    name, report = le.to_lora(comfy_host, tiny_model, hypernetwork, "dropped_bias", value_bias="drop (any reader)",
                              conditioning=positive, latent=latent, seed=3)
    path = comfy_host.model_dir("loras") / name
    assert not any(k.endswith(".diff_b") for k in _keys(path)) and "value bias dropped" in report
    applied = s.apply_node(comfy_host, tiny_model, hypernetwork, 1.0, speed_path=False)
    measured = le.effect_error(tiny_model, le.lora_model(comfy_host, tiny_model, name), applied, x,
                               le.mid_sigma(tiny_model), positive)
    assert measured > 10 * EXACT_TOL  # the value offset matters for this network ...
    assert le.reported_unet_error(path) == pytest.approx(measured, rel=1e-3)  # ... and the node says how much


def test_rank_r_reports_the_truncation_and_the_error_it_leaves(comfy_host, hypernetwork_dir, tiny_model):
    hypernetwork = _linear(comfy_host, hypernetwork_dir, le.TINY_SD1_DIMS, seed=14)
    positive, latent, x = le.probe(tiny_model)
    full, _ = le.to_lora(comfy_host, tiny_model, hypernetwork, "rank_full", conditioning=positive, latent=latent, seed=3)
    cut, _ = le.to_lora(comfy_host, tiny_model, hypernetwork, "rank_4", rank=4, conditioning=positive,
                        latent=latent, seed=3)
    loras = comfy_host.model_dir("loras")
    # The truncation error: recompute it from the two files (full-rank delta vs its rank-4 factors).
    full_sd, cut_sd = _state(loras / full), _state(loras / cut)
    squared_error = squared_total = 0.0
    for stem in {k.split(".")[0] for k in cut_sd if k.endswith("lora_up.weight")}:
        exact, approx = _change(full_sd, stem), _change(cut_sd, stem)
        assert cut_sd[f"{stem}.lora_down.weight"].shape[0] == 4
        squared_error += float((exact - approx).square().sum())
        squared_total += float(exact.square().sum())
    record = json.loads(le.metadata(loras / cut)["hn_export"])
    assert record["rank"] == 4
    assert record["truncation_error"] == pytest.approx((squared_error / squared_total) ** 0.5, rel=1e-4)
    # The UNet error the node reports is the one measured through LoraLoaderModelOnly.
    applied = s.apply_node(comfy_host, tiny_model, hypernetwork, 1.0, speed_path=False)
    measured = le.effect_error(tiny_model, le.lora_model(comfy_host, tiny_model, cut), applied, x,
                               le.mid_sigma(tiny_model), positive)
    assert measured > 10 * EXACT_TOL
    assert le.reported_unet_error(loras / cut) == pytest.approx(measured, rel=1e-3)


def test_nonlinear_fit_reports_the_error_measured(comfy_host, hypernetwork_dir, shaped):
    family, model, dims = shaped
    hypernetwork = _nonlinear(comfy_host, hypernetwork_dir, dims)
    positive, latent, x = le.probe(model, size=16)  # enough self-attention tokens for the widest layers
    name, report = le.to_lora(comfy_host, model, hypernetwork, f"fit_{family}", conditioning=positive,
                              latent=latent, seed=3, calibration_steps=4)
    assert "linear fit attn1" in report and "linear fit attn2" in report
    path = comfy_host.model_dir("loras") / name
    assert json.loads(le.metadata(path)["hn_export"])["exact"] is False
    applied = s.apply_node(comfy_host, model, hypernetwork, 1.0, speed_path=False)
    measured = le.effect_error(model, le.lora_model(comfy_host, model, name), applied, x, le.mid_sigma(model), positive)
    assert le.reported_unet_error(path) == pytest.approx(measured, rel=1e-3)
    assert measured < 1.0  # better than leaving the hypernetwork out


def test_strength_profile_over_the_whole_schedule_exports_exactly(comfy_host, hypernetwork_dir, tiny_model):
    hypernetwork = s.strength_node(comfy_host, _linear(comfy_host, hypernetwork_dir, le.TINY_SD1_DIMS, seed=15),
                                   self_attention=0.5, cross_attention=1.5, block_weights="output 4: 0")
    positive, latent, x = le.probe(tiny_model)
    name, _ = le.to_lora(comfy_host, tiny_model, hypernetwork, "profiled", strength=0.8, conditioning=positive,
                         latent=latent, seed=3)
    applied = s.apply_node(comfy_host, tiny_model, hypernetwork, 0.8, speed_path=False)
    error = le.effect_error(tiny_model, le.lora_model(comfy_host, tiny_model, name), applied, x,
                            le.mid_sigma(tiny_model), positive)
    assert error <= EXACT_TOL
    # output block 4 of the tiny UNet (one res block per level) is up_blocks.2.attentions.0
    assert not any("output_blocks_4_" in k or "up_blocks_2_attentions_0_" in k for k in _keys(
        comfy_host.model_dir("loras") / name))  # weight 0 there: nothing exported


def test_bake_equals_apply_and_the_saved_checkpoint_reloads(comfy_host, hypernetwork_dir):
    import comfy.sd

    model = le.one_level_sd15()  # the checkpoint loader must detect it as SD1.5 when it reads it back
    hypernetwork = _linear(comfy_host, hypernetwork_dir, le.ONE_LEVEL_DIMS, seed=16, std=0.02)
    positive, latent, x = le.probe(model)
    before = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    out = s.run_node(comfy_host, "BakeHypernetwork", model=model, hypernetwork=hypernetwork, strength=1.0,
                     conditioning=positive, latent=latent, seed=3)
    baked, report = out["result"]
    sigma = le.mid_sigma(model)
    applied = s.apply_node(comfy_host, model, hypernetwork, 1.0, speed_path=False)
    effect = s.rel_err(le.eps(applied, x, sigma, positive), le.eps(model, x, sigma, positive))
    assert effect > MIN_EFFECT and le.effect_error(model, baked, applied, x, sigma, positive) <= EXACT_TOL
    assert "one UNet step" in report

    # ComfyUI's own ModelSave writes the baked weights; its checkpoint loader reads them back.
    s.run_node(comfy_host, "ModelSave", model=baked, filename_prefix="hn_bake_test/baked")
    output = Path(comfy_host.folder_paths.get_output_directory()) / "hn_bake_test"
    saved = sorted(output.glob("baked_*.safetensors"))[-1]
    reloaded = comfy.sd.load_checkpoint_guess_config(str(saved), output_vae=False, output_clip=False)[0]
    assert le.effect_error(model, reloaded, applied, x, sigma, positive) <= EXACT_TOL
    after = model.model.diffusion_model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())  # the input model is untouched


@pytest.mark.parametrize("case", ["unused dims", "rank too large", "step range"])
def test_refusals_say_why_and_leave_no_file(comfy_host, hypernetwork_dir, tiny_model, case):
    loras = comfy_host.model_dir("loras")
    before = le.folder_listing(loras)
    if case == "unused dims":
        hypernetwork, options, words = _linear(comfy_host, hypernetwork_dir, (1024, 320), seed=17), {}, \
            ["[320, 1024]", "match no attention layer", "[32, 64, 128]", "[768]"]
    elif case == "rank too large":
        hypernetwork, options, words = _linear(comfy_host, hypernetwork_dir, le.TINY_SD1_DIMS, seed=18), \
            {"rank": 40}, ["rank 40", "attn1.to_k", "32x32", "at most 32"]
    else:
        hypernetwork = s.strength_node(comfy_host, _linear(comfy_host, hypernetwork_dir, le.TINY_SD1_DIMS, seed=19),
                                       start_percent=0.2)
        options, words = {}, ["0.2", "every step", "start_percent 0"]
    for node in ("HypernetworkToLoRA", "BakeHypernetwork"):
        if node == "BakeHypernetwork" and case == "rank too large":
            continue
        with pytest.raises(ValueError) as info:
            if node == "HypernetworkToLoRA":
                le.to_lora(comfy_host, tiny_model, hypernetwork, f"refused_{case}", **options)
            else:
                s.run_node(comfy_host, node, model=tiny_model, hypernetwork=hypernetwork, strength=1.0)
        message = str(info.value)
        assert all(word in message for word in words), message
    assert le.folder_listing(loras) == before  # no file, no temporary left behind


def _keys(path) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return set(f.keys())


def _change(state, stem) -> torch.Tensor:
    """A module's weight change as every kohya reader computes it: up @ down * alpha / rank."""
    down = state[f"{stem}.lora_down.weight"].double()
    return state[f"{stem}.lora_up.weight"].double() @ down * float(state[f"{stem}.alpha"]) / down.shape[0]


def _state(path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))
