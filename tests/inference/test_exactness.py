"""Issue 3, exactness: LoadHypernetwork -> ApplyHypernetwork equals an independent A1111 reference.

The reference hooks every attention module of an unpatched clone (``support.a1111_hooks``) and
rewrites the key/value inputs with ``tests/reference/a1111_reference.py``, written from the spec
alone. Files are raw A1111 dicts saved with ``torch.save`` into the hypernetworks folder and picked
by name, as a user does. Every case runs on both Apply paths: ``speed_path=True`` (linear networks
folded into to_k/to_v) and ``speed_path=False`` (the exact patch path). Tolerance: 1e-5 relative
in fp32, on the UNet's output (epsilon).
"""
from __future__ import annotations

import pytest
import torch

from tests.inference import support as s
from tests.reference import a1111_reference as ref
from tests.reference.a1111_reference import a1111_activation_dict, make_raw_a1111_dict

TOL = 1e-5
# The hypernetwork must visibly change the output, else a 1e-5 agreement proves nothing.
MIN_EFFECT = 1e-3
SIGMA = 1.5

TINY_DIMS = (32, 64, 128, 768)  # every attention width of the tiny SD1 model
SD15_DIMS = (320, 640, 768, 1280)

# A1111's table minus the three it lists but cannot build without arguments or that change the
# width (glu, multiheadattention, threshold): no A1111 file can use those.
ACTIVATIONS = sorted(set(a1111_activation_dict()) - {"glu", "multiheadattention", "threshold"})

# Trained hypernetworks have weights of std ~0.01-0.03; 0.1 makes large changes.
OPTION_CASES = {
    "linear-std0.01": dict(activation="linear", std=0.01),
    "linear-std0.02-strength0.7": dict(activation="linear", std=0.02, strength=0.7),
    "linear-std0.01-negative-strength": dict(activation="linear", std=0.01, strength=-0.8),
    "linear-std0.1": dict(activation="linear", std=0.1),
    "none-activation": dict(activation=None, std=0.01),
    "linear-layernorm": dict(activation="linear", is_layer_norm=True, std=0.02),
    "relu-layernorm": dict(activation="relu", is_layer_norm=True, std=0.03),
    "relu-layernorm-std0.1": dict(activation="relu", is_layer_norm=True, std=0.1),
    "tanh-layernorm-no-activate-output": dict(activation="tanh", is_layer_norm=True, activate_output=False, std=0.03),
    "relu-no-activate-output": dict(activation="relu", activate_output=False, std=0.03),
    "relu-missing-activate-output": dict(activation="relu", omit=("activate_output",), std=0.03),
    "layernorm-missing-activate-output": dict(activation="elu", is_layer_norm=True, omit=("activate_output",), std=0.03),
    "dropout-explicit": dict(activation="relu", layer_structure=(1, 2, 2, 1), use_dropout=True,
                             dropout_structure=(0, 0.1, 0.15, 0), std=0.03),
    "dropout-derived": dict(activation="leakyrelu", layer_structure=(1, 2, 2, 2, 1), use_dropout=True,
                            last_layer_dropout=True, omit=("dropout_structure",), std=0.03),
    "dropout-derived-no-last": dict(activation="selu", layer_structure=(1, 2, 2, 1), use_dropout=True,
                                    omit=("dropout_structure",), std=0.03),
    "dropout-linear": dict(activation="linear", layer_structure=(1, 2, 2, 1), use_dropout=True,
                           omit=("dropout_structure",), std=0.01),
    "fractional-1.5": dict(activation="swish", layer_structure=(1, 1.5, 1.5, 1), is_layer_norm=True, std=0.03),
    "fractional-narrow": dict(activation="gelu", layer_structure=(1, 0.5, 1), std=0.03),
    "fractional-odd": dict(activation="mish", layer_structure=(1, 1.25, 0.75, 1), use_dropout=True, std=0.03),
    "fractional-linear": dict(activation="linear", layer_structure=(1, 1.5, 0.5, 1), std=0.01),
    "single-linear-layer": dict(activation="relu", layer_structure=(1, 1), std=0.03),
    "deep-layernorm": dict(activation="leakyrelu", layer_structure=(1, 2, 2, 2, 1), is_layer_norm=True, std=0.03),
    "tuple-pairs": dict(activation="relu", pair_type=tuple, std=0.03),
    "list-pairs": dict(activation="relu", pair_type=list, std=0.03),
    "metadata-all-missing": dict(omit=("layer_structure", "activation_func", "is_layer_norm", "use_dropout",
                                       "dropout_structure", "activate_output", "last_layer_dropout",
                                       "weight_initialization"), std=0.01),
    "novelai-legacy": dict(legacy_novelai=True, std=0.01),
    "novelai-legacy-tuple-std0.05": dict(legacy_novelai=True, pair_type=tuple, std=0.05),
}


def _is_linear(case: dict) -> bool:
    """A file without activation or layer norm: Apply must fold it on the speed path, however strong
    (issue 11; the fold's rounding is judged against float64 truth in test_fold_truth.py)."""
    return case.get("activation", "linear") in ("linear", None) and not case.get("is_layer_norm", False)


def _raw(case: dict, dims, seed: int):
    kwargs = {k: v for k, v in case.items() if k != "strength"}
    return make_raw_a1111_dict(dims=dims, seed=seed, **kwargs)


def _check_both_paths(comfy_host, hypernetwork_dir, model, raw, filename, x, context, strength=1.0,
                      must_fold=False, truth_model=None):
    """Both Apply paths against the fp32 A1111 reference (TOL), or, for a folded linear file when
    ``truth_model`` (the same UNet in float64) is given, the speed path against float64 truth."""
    hypernetwork = s.load_raw(comfy_host, hypernetwork_dir, filename, raw)
    plain = s.plain_eps(model, x, SIGMA, context)
    reference = s.reference_eps(model, [raw], x, SIGMA, context, strengths=[strength])
    effect = s.rel_err(plain, reference)
    assert effect > MIN_EFFECT, f"{filename}: the hypernetwork barely changes the output ({effect:.2e})"
    outputs = {}
    for speed_path in (False, True):
        patched = s.apply_node(comfy_host, model, hypernetwork, strength, speed_path=speed_path)
        if speed_path and must_fold:
            assert s.is_folded(patched), f"{filename}: the speed path did not fold a linear network"
        if not speed_path:
            assert not s.is_folded(patched)
        outputs[speed_path] = s.eps(patched, x, SIGMA, context)
        if speed_path and must_fold and truth_model is not None:
            continue  # judged against the truth below
        err = s.rel_err(outputs[speed_path], reference)
        assert err <= TOL, (f"{filename} speed_path={speed_path}: relative error {err:.3e} > {TOL} "
                            f"(hypernetwork effect {effect:.3e})")
    if must_fold and truth_model is not None:
        _assert_fold_as_close_to_truth(filename, truth_model, raw, strength, x, context, plain, outputs)


def _assert_fold_as_close_to_truth(filename, truth_model, raw, strength, x, context, plain, outputs):
    """The fold rounds in other places than the fp32 reference (and the exact path, which follows the
    reference's order) does, so for strong files it differs from both by more than TOL. Judge the
    two paths against the float64 truth instead: the folded output must be at least as close to it
    as the exact path's, up to the fp32 UNet's own rounding (its error with no hypernetwork), which
    both carry and which mixes with the hypernetwork's rounding as the layers follow each other."""
    truth = _truth_eps(truth_model, raw, strength, x, context)
    own = s.rel_err(plain, s.plain_eps(truth_model, x, SIGMA, context))
    assert own < 1e-5, f"the float64 UNet is not the fp32 one ({own:.2e} apart)"
    folded, exact = s.rel_err(outputs[True], truth), s.rel_err(outputs[False], truth)
    assert folded <= exact + own, (f"{filename}: error to the float64 truth, folded {folded:.3e}, exact path "
                                   f"{exact:.3e}, the fp32 UNet's own {own:.3e}")


def _truth_eps(truth_model, raw, strength, x, context):
    """The A1111 reference on the float64 UNet with the file's MLPs in float64."""
    build = ref.build_reference_pairs
    ref.build_reference_pairs = lambda r: {d: (k.double(), v.double()) for d, (k, v) in build(r).items()}
    try:
        return s.reference_eps(truth_model, [raw], x, SIGMA, context, strengths=[strength])
    finally:
        ref.build_reference_pairs = build


@pytest.fixture(scope="module")
def tiny_model64(comfy_host):
    """The tiny SD1 UNet (the tiny_model fixture's weights) computing in float64: the truth."""
    return s.tiny_sd1_in(torch.float64, None)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_matches_reference(comfy_host, hypernetwork_dir, tiny_model, tiny_model64, activation):
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=1)
    # Odd (activation-dependent) seeds so that the files differ from each other.
    raw = make_raw_a1111_dict(dims=TINY_DIMS, activation=activation, std=0.03, seed=len(activation))
    _check_both_paths(comfy_host, hypernetwork_dir, tiny_model, raw, f"exact_act_{activation}.pt", x, context,
                      must_fold=activation == "linear", truth_model=tiny_model64)


@pytest.mark.parametrize("activation", ["relu", "gelu", "prelu", "softplus", "hardtanh"])
def test_activation_with_layer_norm_and_large_weights(comfy_host, hypernetwork_dir, tiny_model, activation):
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=2)
    raw = make_raw_a1111_dict(dims=TINY_DIMS, activation=activation, is_layer_norm=True, std=0.1, seed=3)
    _check_both_paths(comfy_host, hypernetwork_dir, tiny_model, raw, f"exact_ln_{activation}.pt", x, context)


@pytest.mark.parametrize("case_id", sorted(OPTION_CASES))
def test_file_options_match_reference(comfy_host, hypernetwork_dir, tiny_model, tiny_model64, case_id):
    case = OPTION_CASES[case_id]
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=3)
    raw = _raw(case, TINY_DIMS, seed=11)
    _check_both_paths(comfy_host, hypernetwork_dir, tiny_model, raw, f"exact_opt_{case_id}.pt", x, context,
                      strength=case.get("strength", 1.0), must_fold=_is_linear(case), truth_model=tiny_model64)


SD15_CASES = ["linear-std0.01", "relu-layernorm", "relu-missing-activate-output", "fractional-1.5",
              "dropout-derived", "novelai-legacy"]


@pytest.mark.parametrize("case_id", SD15_CASES)
def test_sd15_shapes_match_reference(comfy_host, hypernetwork_dir, sd15_model, case_id):
    """All four SD1 dims (320/640/1280 self-attention, 768 cross-attention) on the real SD1.5 UNet."""
    case = {**OPTION_CASES[case_id]}
    if case_id == "relu-layernorm":
        case["std"] = 0.02
    x, context = s.models.seeded_inputs(sd15_model, batch=1, size=8, seed=4)
    raw = _raw(case, SD15_DIMS, seed=5)
    _check_both_paths(comfy_host, hypernetwork_dir, sd15_model, raw, f"exact_sd15_{case_id}.pt", x, context,
                      must_fold=_is_linear(case))


# --- strength 0, determinism ------------------------------------------------------------------


@pytest.mark.parametrize("case_id", ["linear-std0.01", "relu-layernorm", "dropout-explicit"])
def test_strength_zero_is_bit_identical_to_unpatched(comfy_host, hypernetwork_dir, tiny_model, case_id):
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=5)
    hypernetwork = s.load_raw(comfy_host, hypernetwork_dir, f"zero_{case_id}.pt", _raw(OPTION_CASES[case_id], TINY_DIMS, 6))
    plain = s.models.unet_forward(tiny_model, x, SIGMA, context)
    for speed_path in (False, True):
        patched = s.apply_node(comfy_host, tiny_model, hypernetwork, 0.0, speed_path=speed_path)
        out = s.models.unet_forward(patched, x, SIGMA, context)
        assert torch.equal(out, plain), f"speed_path={speed_path}: max diff {(out - plain).abs().max():.3e}"


@pytest.mark.parametrize("case_id", ["linear-std0.01", "dropout-derived", "dropout-explicit"])
def test_two_identical_runs_are_bit_identical(comfy_host, hypernetwork_dir, tiny_model, case_id):
    """Dropout in the file must not act at inference: same graph twice, same bits."""
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=6)
    name = f"twice_{case_id}.pt"
    s.write_raw(hypernetwork_dir, name, _raw(OPTION_CASES[case_id], TINY_DIMS, 7))
    for speed_path in (False, True):
        outs = []
        for _ in range(2):  # the whole graph again: load, apply, evaluate
            hypernetwork = s.load_node(comfy_host, name)[0]
            patched = s.apply_node(comfy_host, tiny_model, hypernetwork, 1.0, speed_path=speed_path)
            outs.append(s.models.unet_forward(patched, x, SIGMA, context))
        outs.append(s.models.unet_forward(patched, x, SIGMA, context))  # and the same model again
        assert torch.equal(outs[0], outs[1]) and torch.equal(outs[1], outs[2]), f"speed_path={speed_path}"


# --- chaining Apply nodes: A1111 order ----------------------------------------------------------

CHAIN = {
    "lin_a": dict(activation="linear", std=0.01),
    "relu_ln": dict(activation="relu", is_layer_norm=True, std=0.03),
    "lin_b": dict(activation="linear", layer_structure=(1, 1.5, 1), std=0.012),
    "tanh": dict(activation="tanh", std=0.04),
}


@pytest.fixture
def chain_files(comfy_host, hypernetwork_dir):
    out = {}
    for seed, (key, case) in enumerate(CHAIN.items(), start=20):
        raw = _raw(case, TINY_DIMS, seed)
        out[key] = (raw, s.load_raw(comfy_host, hypernetwork_dir, f"chain_{key}.pt", raw))
    return out


@pytest.mark.parametrize("order, strengths", [
    (("lin_a", "relu_ln"), (1.0, 0.8)),
    (("relu_ln", "lin_a"), (0.8, 1.0)),
    (("lin_a", "lin_b"), (1.0, 0.6)),
    (("lin_a", "relu_ln", "lin_b"), (0.9, 1.0, 1.2)),
    (("tanh", "lin_b", "relu_ln"), (1.0, 1.0, 0.5)),
])
@pytest.mark.parametrize("paths", ["all-speed", "all-exact", "mixed"])
def test_chained_apply_nodes_follow_a1111_order(comfy_host, tiny_model, chain_files, order, strengths, paths):
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=8)
    raws = [chain_files[key][0] for key in order]
    reference = s.reference_eps(tiny_model, raws, x, SIGMA, context, strengths=strengths)
    patched = tiny_model
    for position, (key, strength) in enumerate(zip(order, strengths)):
        speed_path = {"all-speed": True, "all-exact": False, "mixed": position % 2 == 0}[paths]
        patched = s.apply_node(comfy_host, patched, chain_files[key][1], strength, speed_path=speed_path)
    err = s.rel_err(s.eps(patched, x, SIGMA, context), reference)
    assert err <= TOL, f"chain {order} {paths}: relative error {err:.3e}"


def test_chain_order_matters(comfy_host, tiny_model, chain_files):
    """The order test above is not vacuous: swapping two networks changes the output clearly."""
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=8)
    raws = [chain_files["tanh"][0], chain_files["relu_ln"][0]]
    forward = s.reference_eps(tiny_model, raws, x, SIGMA, context)
    backward = s.reference_eps(tiny_model, raws[::-1], x, SIGMA, context)
    assert s.rel_err(backward, forward) > 100 * TOL
