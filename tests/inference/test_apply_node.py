"""Issue 3, the nodes themselves: registry, untouched input model, file cache and info, SD2 / SDXL,
dtypes (fp16, bf16, manual casting), a KSampler run, bad inputs, ComfyUI's memory management.
"""
from __future__ import annotations

import logging

import pytest
import torch

from tests.inference import support as s
from tests.reference.a1111_reference import make_raw_a1111_dict

TOL = 1e-5
SIGMA = 1.5
TINY_DIMS = (32, 64, 128, 768)


# --- the nodes as ComfyUI registers them -----------------------------------------------------------


def test_nodes_come_from_the_registry_with_the_documented_sockets(comfy_host, hypernetwork_dir):
    s.write_raw(hypernetwork_dir, "registry_probe.pt", make_raw_a1111_dict(dims=(768,)))
    (hypernetwork_dir / "registry_notes.txt").write_text("not a model")
    load = comfy_host.node_class("LoadHypernetwork")
    choices = load.INPUT_TYPES()["required"]["hypernetwork_name"][0]
    assert "registry_probe.pt" in choices and "registry_notes.txt" not in choices
    assert load.RETURN_TYPES[:2] == ("HYPERNETWORK", "STRING")  # appended outputs: tests/inference/test_a1111_sidecars.py

    apply = comfy_host.node_class("ApplyHypernetwork")
    inputs = apply.INPUT_TYPES()
    assert set(inputs["required"]) == {"model", "hypernetwork", "strength"}
    assert inputs["optional"]["speed_path"][0] == "BOOLEAN" and inputs["optional"]["speed_path"][1]["default"] is True
    assert apply.RETURN_TYPES == ("MODEL",)

    strength = comfy_host.node_class("HypernetworkStrength")
    assert set(strength.INPUT_TYPES()["required"]) >= {
        "hypernetwork", "self_attention", "cross_attention", "input_blocks", "middle_block", "output_blocks",
        "start_percent", "end_percent", "block_weights"}
    assert strength.RETURN_TYPES == ("HYPERNETWORK",)
    for cls in (load, apply, strength):
        assert cls.__module__.startswith(comfy_host.pack_module_name + ".")


# --- the input model stays as it was ---------------------------------------------------------------


def _snapshot(model) -> dict:
    """What Apply could mutate on its input: options, attention patches, object and weight patches."""
    options = model.model_options
    transformer = options.get("transformer_options", {})
    return {
        "option_keys": sorted(options),
        "transformer_keys": sorted(transformer),
        "patches": {k: list(v) for k, v in transformer.get("patches", {}).items()},
        "patches_replace": {k: dict(v) for k, v in transformer.get("patches_replace", {}).items()},
        "object_patches": dict(model.object_patches),
        "weight_patches": {k: list(v) for k, v in model.patches.items()},
        "patches_uuid": model.patches_uuid,
    }


def test_apply_leaves_the_input_model_untouched(comfy_host, hypernetwork_dir, tiny_model):
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=20)
    linear = s.load_raw(comfy_host, hypernetwork_dir, "untouched_linear.pt",
                        make_raw_a1111_dict(dims=TINY_DIMS, activation="linear", std=0.01, seed=1))
    nonlinear = s.load_raw(comfy_host, hypernetwork_dir, "untouched_relu.pt",
                           make_raw_a1111_dict(dims=TINY_DIMS, activation="relu", is_layer_norm=True, std=0.03, seed=2))
    plain_before = s.models.unet_forward(tiny_model, x, SIGMA, context)

    # A model that already carries one of our hypernetworks (folded), then more on top of it.
    first = s.apply_node(comfy_host, tiny_model, linear, 1.0, speed_path=True)
    assert s.is_folded(first)
    first_before = s.models.unet_forward(first, x, SIGMA, context)
    snapshots = {id(m): _snapshot(m) for m in (tiny_model, first)}

    for base in (tiny_model, first):
        for hypernetwork in (linear, nonlinear):
            for speed_path in (True, False):
                profiled = s.strength_node(comfy_host, hypernetwork, input_blocks=0.5)
                for hn in (hypernetwork, profiled):
                    patched = s.apply_node(comfy_host, base, hn, 0.9, speed_path=speed_path)
                    assert patched is not base
                    s.models.unet_forward(patched, x, SIGMA, context)  # running it must not leak either
                    assert _snapshot(base) == snapshots[id(base)], f"speed_path={speed_path}"

    assert torch.equal(s.models.unet_forward(tiny_model, x, SIGMA, context), plain_before)
    assert torch.equal(s.models.unet_forward(first, x, SIGMA, context), first_before)


def test_apply_again_after_sampling_with_a_folded_model(comfy_host, hypernetwork_dir, tiny_model):
    """A user samples with a (folded) linear hypernetwork, changes the strength and queues again:
    Apply runs on the same input model while ComfyUI still holds the first result loaded, with its
    stand-in projections live in the shared UNet. The new Apply must fold onto the original
    projections, not onto the other clone's stand-ins."""
    raw = make_raw_a1111_dict(dims=TINY_DIMS, activation="linear", std=0.01, seed=3)
    hypernetwork = s.load_raw(comfy_host, hypernetwork_dir, "requeue_linear.pt", raw)
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=20)
    references = {strength: s.reference_eps(tiny_model, [raw], x, SIGMA, context, strengths=[strength])
                  for strength in (1.0, 0.5)}
    first = s.apply_node(comfy_host, tiny_model, hypernetwork, 1.0, speed_path=True)
    assert s.is_folded(first)
    assert s.rel_err(s.eps(first, x, SIGMA, context), references[1.0]) <= TOL
    second = s.apply_node(comfy_host, tiny_model, hypernetwork, 0.5, speed_path=True)  # first still loaded
    assert s.rel_err(s.eps(second, x, SIGMA, context), references[0.5]) <= TOL
    assert s.rel_err(s.eps(first, x, SIGMA, context), references[1.0]) <= TOL


# --- LoadHypernetwork: cache and info --------------------------------------------------------------


def test_load_reuses_the_network_while_the_file_is_unchanged(comfy_host, hypernetwork_dir, tiny_model):
    name = "cached.pt"
    path = hypernetwork_dir / name
    first_raw = make_raw_a1111_dict(dims=TINY_DIMS, activation="relu", std=0.03, seed=1)
    s.write_raw(hypernetwork_dir, name, first_raw)
    load = comfy_host.node_class("LoadHypernetwork")

    a, b = s.load_node(comfy_host, name)[0], s.load_node(comfy_host, name)[0]
    assert a.network is b.network, "an unchanged file must not be read again"
    changed_before = load.IS_CHANGED(hypernetwork_name=name)
    assert changed_before == load.IS_CHANGED(hypernetwork_name=name)

    # Same structure and size, new weights: only the file's time tells the difference.
    second_raw = make_raw_a1111_dict(dims=TINY_DIMS, activation="relu", std=0.03, seed=2)
    s.write_raw(hypernetwork_dir, name, second_raw)
    s.file_mtime_bump(path)
    assert load.IS_CHANGED(hypernetwork_name=name) != changed_before
    c = s.load_node(comfy_host, name)[0]
    assert c.network is not a.network

    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=21)
    reference = s.reference_eps(tiny_model, [second_raw], x, SIGMA, context)
    assert s.rel_err(s.eps(s.apply_node(comfy_host, tiny_model, c), x, SIGMA, context), reference) <= TOL
    # The network handed out before the rewrite still computes the old file (nothing mutated in place).
    old_reference = s.reference_eps(tiny_model, [first_raw], x, SIGMA, context)
    assert s.rel_err(s.eps(s.apply_node(comfy_host, tiny_model, a), x, SIGMA, context), old_reference) <= TOL


def test_info_string_shows_what_was_loaded(comfy_host, hypernetwork_dir):
    raw = make_raw_a1111_dict(dims=(320, 768), layer_structure=(1, 1.5, 1), activation="elu", is_layer_norm=True,
                              use_dropout=True, dropout_structure=(0, 0.2, 0), name="inky_style", step=4321,
                              sd_checkpoint="a9263745", sd_checkpoint_name="v1-5-pruned-emaonly",
                              optional_info="trained on ink drawings", seed=3)
    s.write_raw(hypernetwork_dir, "info_probe.pt", raw)
    _, info, ui = s.load_node(comfy_host, "info_probe.pt")
    assert ui == {"text": [info]}
    parameters = sum(t.numel() for dim in (320, 768) for sd in raw[dim] for t in sd.values())
    assert f"{parameters:,}" in info or str(parameters) in info, info
    for expected in ("inky_style", "320", "768", "1.5", "elu", "4321", "v1-5-pruned-emaonly",
                     "trained on ink drawings", "0.2"):
        assert expected in info, f"{expected!r} missing from the info:\n{info}"
    lowered = info.lower()
    assert "layer norm: yes" in lowered and "dropout" in lowered


def test_safetensors_and_pth_load_like_the_pt(comfy_host, hypernetwork_dir, tiny_model):
    hn_core = comfy_host.pack_module("hn_core")
    raw = make_raw_a1111_dict(dims=TINY_DIMS, activation="tanh", is_layer_norm=True, std=0.03, seed=4)
    s.write_raw(hypernetwork_dir, "forms.pt", raw)
    s.write_raw(hypernetwork_dir, "forms.pth", raw)
    hn_core.save_hypernetwork(hn_core.load_hypernetwork(hypernetwork_dir / "forms.pt"),
                              hypernetwork_dir / "forms.safetensors")
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=22)
    outs = [s.models.unet_forward(s.apply_node(comfy_host, tiny_model, s.load_node(comfy_host, name)[0]),
                                  x, SIGMA, context)
            for name in ("forms.pt", "forms.pth", "forms.safetensors")]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


# --- SD2 and SDXL shapes ----------------------------------------------------------------------------


def _family_check(comfy_host, hypernetwork_dir, model, tag, nonlinear_dims, linear_dims, tokens=77):
    x, context = s.models.seeded_inputs(model, batch=1, size=8, tokens=tokens, seed=23)
    plain = s.plain_eps(model, x, SIGMA, context)
    cases = {
        "relu_ln": (make_raw_a1111_dict(dims=nonlinear_dims, activation="relu", is_layer_norm=True, std=0.02, seed=5),
                    (False, True), False),
        "linear": (make_raw_a1111_dict(dims=linear_dims, activation="linear", std=0.01, seed=6), (True, False), True),
    }
    for key, (raw, paths, must_fold) in cases.items():
        hypernetwork = s.load_raw(comfy_host, hypernetwork_dir, f"{tag}_{key}.pt", raw)
        reference = s.reference_eps(model, [raw], x, SIGMA, context)
        assert s.rel_err(plain, reference) > 1e-3
        for speed_path in paths:
            patched = s.apply_node(comfy_host, model, hypernetwork, 1.0, speed_path=speed_path)
            if speed_path and must_fold:
                assert s.is_folded(patched), f"{tag}: a small linear network was not folded"
            err = s.rel_err(s.eps(patched, x, SIGMA, context), reference)
            assert err <= TOL, f"{tag} {key} speed_path={speed_path}: relative error {err:.3e}"
            del patched
    return x, context, plain


def test_sd2_shapes(comfy_host, hypernetwork_dir, sd2_model):
    widths = s.models.attention_widths(sd2_model)
    assert widths.attn2 == {1024} and widths.attn1 == {320, 640, 1280}
    _family_check(comfy_host, hypernetwork_dir, sd2_model, "sd2", (320, 640, 1280, 1024), (640, 1024))


def test_sdxl_shapes_and_an_sd1_file_on_sdxl(comfy_host, hypernetwork_dir, sdxl_model, caplog):
    widths = s.models.attention_widths(sdxl_model)
    assert widths.attn2 == {2048} and widths.attn1 == {640, 1280}
    x, context, plain = _family_check(comfy_host, hypernetwork_dir, sdxl_model, "sdxl", (640, 1280, 2048),
                                      (640, 2048), tokens=8)

    # An SD1 file whose dims meet no SDXL layer: a clear warning, and the output is unchanged.
    sd1 = s.load_raw(comfy_host, hypernetwork_dir, "sd1_on_sdxl.pt",
                     make_raw_a1111_dict(dims=(320, 768), activation="relu", std=0.03, name="sd1_style", seed=7))
    for speed_path in (True, False):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            patched = s.apply_node(comfy_host, sdxl_model, sd1, 1.0, speed_path=speed_path)
        _assert_family_warning(caplog, ["320", "768"])
        assert torch.equal(s.eps(patched, x, SIGMA, context), plain)


def _assert_family_warning(caplog, dims):
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    matching = [m for m in warnings if all(d in m for d in dims)]
    assert matching, f"no warning naming the file's dims {dims}; warnings: {warnings}"


# --- dtypes ----------------------------------------------------------------------------------------

DTYPE_MODES = {
    "fp16": (torch.float16, None),
    "bf16": (torch.bfloat16, None),
    "fp16-manual-cast-fp32": (torch.float16, torch.float32),
    "bf16-manual-cast-fp32": (torch.bfloat16, torch.float32),
}
# The patched model's error to the fp32 reference may exceed the plain model's own reduced-precision
# error by at most this factor (the hypernetwork adds its own rounding on top of the UNet's).
DTYPE_FACTOR = 1.5


@pytest.mark.parametrize("mode", sorted(DTYPE_MODES))
def test_reduced_precision_and_manual_cast(comfy_host, hypernetwork_dir, tiny_model, mode):
    dtype, manual_cast = DTYPE_MODES[mode]
    low = s.tiny_sd1_in(dtype, manual_cast)
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=24)
    plain32 = s.plain_eps(tiny_model, x, SIGMA, context)
    plain_low = s.eps(low, x, SIGMA, context)
    own_error = s.rel_err(plain_low, plain32)
    files = {
        "relu_ln": make_raw_a1111_dict(dims=TINY_DIMS, activation="relu", is_layer_norm=True, std=0.03, seed=8),
        "linear": make_raw_a1111_dict(dims=TINY_DIMS, activation="linear", std=0.02, seed=9),
    }
    for key, raw in files.items():
        hypernetwork = s.load_raw(comfy_host, hypernetwork_dir, f"dtype_{key}.pt", raw)
        reference32 = s.reference_eps(tiny_model, [raw], x, SIGMA, context)
        effect = s.rel_err(plain32, reference32)
        assert effect > own_error, f"{key}: the hypernetwork's effect {effect:.2e} drowns in {mode} rounding"
        for speed_path in (False, True):
            patched = s.apply_node(comfy_host, low, hypernetwork, 1.0, speed_path=speed_path)
            out = s.eps(patched, x, SIGMA, context)  # must not raise 'mat1 and mat2 must have the same dtype'
            assert torch.isfinite(out).all()
            err = s.rel_err(out, reference32)
            assert err <= DTYPE_FACTOR * own_error, (
                f"{mode} {key} speed_path={speed_path}: error to the fp32 reference {err:.3e}, the plain "
                f"model's own {mode} error is {own_error:.3e} (effect of the hypernetwork {effect:.3e})")
            # And the hypernetwork really acted: closer to the patched reference than the plain model is.
            assert err < s.rel_err(plain_low, reference32)
    assert next(low.model.diffusion_model.parameters()).dtype == dtype  # the model was not converted


# --- a real sampler --------------------------------------------------------------------------------


def _ksample(comfy_host, model, context):
    positive = [[context, {}]]
    negative = [[torch.zeros_like(context), {}]]
    (latent,) = s.run_node(comfy_host, "KSampler", model=model, seed=7, steps=3, cfg=2.5, sampler_name="euler",
                           scheduler="normal", positive=positive, negative=negative,
                           latent_image={"samples": torch.zeros(1, 4, 8, 8)}, denoise=1.0)
    return latent["samples"]


def test_ksampler_with_and_without_the_pack(comfy_host, hypernetwork_dir, tiny_model):
    _, context = s.models.seeded_inputs(tiny_model, batch=1, seed=25)
    plain = _ksample(comfy_host, tiny_model, context)
    assert torch.isfinite(plain).all()
    for name, raw in {
        "ks_relu.pt": make_raw_a1111_dict(dims=TINY_DIMS, activation="relu", is_layer_norm=True, std=0.03, seed=10),
        "ks_linear.pt": make_raw_a1111_dict(dims=TINY_DIMS, activation="linear", std=0.01, seed=11),
    }.items():
        hypernetwork = s.load_raw(comfy_host, hypernetwork_dir, name, raw)
        for speed_path in (True, False):
            full = _ksample(comfy_host, s.apply_node(comfy_host, tiny_model, hypernetwork, 1.0, speed_path), context)
            zero = _ksample(comfy_host, s.apply_node(comfy_host, tiny_model, hypernetwork, 0.0, speed_path), context)
            ranged = _ksample(comfy_host, s.apply_node(
                comfy_host, tiny_model, s.strength_node(comfy_host, hypernetwork, start_percent=0.0, end_percent=0.3),
                1.0, speed_path), context)
            assert torch.isfinite(full).all()
            assert s.rel_err(full, plain) > 1e-3, f"{name} speed_path={speed_path}: strength 1 changed nothing"
            assert torch.equal(zero, plain), f"{name} speed_path={speed_path}: strength 0 must equal no hypernetwork"
            assert 0 < s.rel_err(ranged, plain) and not torch.equal(ranged, full)


# --- bad inputs ------------------------------------------------------------------------------------


def test_file_removed_after_selection(comfy_host, hypernetwork_dir):
    s.write_raw(hypernetwork_dir, "vanishing_style.pt", make_raw_a1111_dict(dims=(768,)))
    load = comfy_host.node_class("LoadHypernetwork")
    assert "vanishing_style.pt" in load.INPUT_TYPES()["required"]["hypernetwork_name"][0]
    (hypernetwork_dir / "vanishing_style.pt").unlink()
    changed = load.IS_CHANGED(hypernetwork_name="vanishing_style.pt")
    assert changed != changed, "IS_CHANGED must make ComfyUI re-run the node (NaN never equals itself)"
    with pytest.raises(Exception) as err:
        s.load_node(comfy_host, "vanishing_style.pt")
    message = str(err.value)
    assert "vanishing_style.pt" in message and "not found" in message, message


@pytest.mark.parametrize("strength", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_strength_is_a_clear_error(comfy_host, hypernetwork_dir, tiny_model, strength):
    hypernetwork = s.load_raw(comfy_host, hypernetwork_dir, "strength_probe.pt", make_raw_a1111_dict(dims=(768,)))
    with pytest.raises(ValueError) as err:
        s.apply_node(comfy_host, tiny_model, hypernetwork, strength)
    message = str(err.value).lower()
    assert "strength" in message and str(strength).lower() in message, message


def test_hypernetwork_for_another_family_warns(comfy_host, hypernetwork_dir, tiny_model, caplog):
    """An SD2 file (1024 context, 320 self-attention) on an SD1 model: nothing matches."""
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=26)
    hypernetwork = s.load_raw(comfy_host, hypernetwork_dir, "sd2_only.pt",
                              make_raw_a1111_dict(dims=(320, 1024), activation="relu", seed=12))
    plain = s.models.unet_forward(tiny_model, x, SIGMA, context)
    for speed_path in (True, False):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            patched = s.apply_node(comfy_host, tiny_model, hypernetwork, 1.0, speed_path=speed_path)
        _assert_family_warning(caplog, ["320", "1024"])
        assert torch.equal(s.models.unet_forward(patched, x, SIGMA, context), plain)


def test_partial_match_warns_naming_the_unused_dim(comfy_host, hypernetwork_dir, tiny_model, caplog):
    """A file that touches some layers but not with all its dims (issue 9): the unused dim is named."""
    hypernetwork = s.load_raw(comfy_host, hypernetwork_dir, "partial.pt",
                              make_raw_a1111_dict(dims=(768, 1024), seed=13))
    with caplog.at_level(logging.WARNING):
        s.apply_node(comfy_host, tiny_model, hypernetwork, 1.0)
    _assert_family_warning(caplog, ["dim 1024 unused", "cross-attention width 768 is patched"])


# --- ComfyUI's memory management ---------------------------------------------------------------------


def test_network_is_loaded_with_the_model_and_counted(comfy_host, hypernetwork_dir, tiny_model):
    import comfy.model_management as mm

    hypernetwork = s.load_raw(comfy_host, hypernetwork_dir, "memory.pt",
                              make_raw_a1111_dict(dims=TINY_DIMS, activation="relu", seed=14))
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=27)
    patched = s.apply_node(comfy_host, tiny_model, hypernetwork, 1.0, speed_path=False)
    s.models.unet_forward(patched, x, SIGMA, context)
    loaded = [m for m in mm.loaded_models() if m is not None]  # None: a patcher already dropped
    assert any(m.model is hypernetwork.network for m in loaded), \
        f"loaded models: {[type(m.model).__name__ for m in loaded]}"
    companion = next(m for m in loaded if m.model is hypernetwork.network)
    expected = sum(p.numel() * p.element_size() for p in hypernetwork.network.parameters())
    assert companion.model_size() >= expected


def test_rerunning_apply_logs_no_memory_leak(comfy_host, hypernetwork_dir, tiny_model, caplog):
    """A user changing the strength re-runs Apply; ComfyUI must not report a leaked model each time."""
    hypernetwork = s.load_raw(comfy_host, hypernetwork_dir, "rerun.pt",
                              make_raw_a1111_dict(dims=TINY_DIMS, activation="relu", seed=15))
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=28)
    with caplog.at_level(logging.INFO):
        for strength in (1.0, 0.5, 0.25):
            patched = s.apply_node(comfy_host, tiny_model, hypernetwork, strength, speed_path=False)
            s.models.unet_forward(patched, x, SIGMA, context)
            del patched  # the executor drops the old output when the node re-runs
    leaks = [r.getMessage() for r in caplog.records if "memory leak" in r.getMessage().lower()]
    assert not leaks, leaks
