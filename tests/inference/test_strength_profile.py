"""Issue 3, HypernetworkStrength: per attention kind, per block group / block, and step range.

Each profile is checked against the A1111 reference hooked with the same multiplier per layer
(``support.a1111_hooks(weight=...)``, which knows each layer's block from the UNet itself), or, for
the step range, against the unpatched model (bit-identical outside) and the full-range hypernetwork
(inside). The range rule is ComfyUI's ConditioningSetTimestepRange one: active while
``percent_to_sigma(end) <= sigma <= percent_to_sigma(start)``, both ends included.
"""
from __future__ import annotations

import pytest
import torch

from tests.inference import support as s
from tests.reference.a1111_reference import make_raw_a1111_dict

TOL = 1e-5
SIGMA = 1.5
TINY_DIMS = (32, 64, 128, 768)

FILES = {
    "nonlinear": dict(activation="relu", is_layer_norm=True, std=0.03),
    "linear": dict(activation="linear", std=0.01),  # foldable: the speed path is exercised too
}
# (file, speed_path): a nonlinear network takes the exact path whatever speed_path says, so the
# default (True) covers it; the linear one runs folded and unfolded.
VARIANTS = [("nonlinear", True), ("linear", True), ("linear", False)]


@pytest.fixture(params=VARIANTS, ids=lambda v: f"{v[0]}-speed_path={v[1]}")
def network(request, comfy_host, hypernetwork_dir):
    """(raw A1111 dict, HYPERNETWORK from LoadHypernetwork, speed_path for Apply)."""
    kind, speed_path = request.param
    raw = make_raw_a1111_dict(dims=TINY_DIMS, seed=31, **FILES[kind])
    return raw, s.load_raw(comfy_host, hypernetwork_dir, f"profile_{kind}.pt", raw), speed_path


def _group_weight(groups: dict, overrides: dict):
    def weight(block, index, kind):
        return overrides.get(tuple(block), groups[block[0]])
    return weight


# --- attention kinds and blocks -------------------------------------------------------------------

KIND_CASES = [
    dict(self_attention=1.0, cross_attention=0.0),
    dict(self_attention=0.0, cross_attention=1.0),
    dict(self_attention=0.5, cross_attention=1.5),
]


@pytest.mark.parametrize("kinds", KIND_CASES, ids=lambda k: f"attn1={k['self_attention']}-attn2={k['cross_attention']}")
def test_attention_kind_multipliers(comfy_host, tiny_model, network, kinds):
    raw, hypernetwork, speed_path = network
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=10)
    apply_strength = 0.8
    multiplier = {"attn1": kinds["self_attention"], "attn2": kinds["cross_attention"]}
    reference = s.reference_eps(tiny_model, [raw], x, SIGMA, context, strengths=[apply_strength],
                                weight=lambda block, index, kind: multiplier[kind])
    profiled = s.strength_node(comfy_host, hypernetwork, **kinds)
    patched = s.apply_node(comfy_host, tiny_model, profiled, apply_strength, speed_path=speed_path)
    err = s.rel_err(s.eps(patched, x, SIGMA, context), reference)
    assert err <= TOL, f"{kinds} speed_path={speed_path}: relative error {err:.3e}"


def test_attention_kind_multipliers_are_not_vacuous(tiny_model):
    """attn1-only, attn2-only and both give three clearly different outputs."""
    raw = make_raw_a1111_dict(dims=TINY_DIMS, seed=31, **FILES["nonlinear"])
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=10)
    only = {kind: s.reference_eps(tiny_model, [raw], x, SIGMA, context,
                                  weight=lambda block, index, k, kind=kind: float(k == kind))
            for kind in ("attn1", "attn2")}
    both = s.reference_eps(tiny_model, [raw], x, SIGMA, context)
    assert s.rel_err(only["attn1"], both) > 1e-3 and s.rel_err(only["attn2"], both) > 1e-3


BLOCK_CASES = {
    "groups": (dict(input_blocks=0.5, middle_block=0.0, output_blocks=1.5), {}),
    "only-middle": (dict(input_blocks=0.0, middle_block=1.0, output_blocks=0.0), {}),
    "per-block": (dict(input_blocks=1.0, middle_block=1.0, output_blocks=1.0),
                  {("input", 3): 2.0, ("output", 4): 0.0, ("middle", 0): 0.5}),
    "groups-and-blocks": (dict(input_blocks=0.3, middle_block=1.2, output_blocks=0.0),
                          {("input", 1): 0.0, ("output", 2): 1.7}),
}


def _block_text(overrides: dict) -> str:
    return ", ".join(f"{group} {index}: {value}" for (group, index), value in overrides.items())


@pytest.mark.parametrize("case_id", sorted(BLOCK_CASES))
def test_block_group_and_per_block_weights(comfy_host, tiny_model, network, case_id):
    raw, hypernetwork, speed_path = network
    groups, overrides = BLOCK_CASES[case_id]
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=11)
    group_of = {"input": groups["input_blocks"], "middle": groups["middle_block"], "output": groups["output_blocks"]}
    attn1 = 0.7  # combined with the attention-kind multiplier
    block_weight = _group_weight(group_of, overrides)
    reference = s.reference_eps(
        tiny_model, [raw], x, SIGMA, context,
        weight=lambda block, index, kind: (attn1 if kind == "attn1" else 1.0) * block_weight(block, index, kind))
    profiled = s.strength_node(comfy_host, hypernetwork, self_attention=attn1, block_weights=_block_text(overrides),
                               **groups)
    patched = s.apply_node(comfy_host, tiny_model, profiled, 1.0, speed_path=speed_path)
    err = s.rel_err(s.eps(patched, x, SIGMA, context), reference)
    assert err <= TOL, f"{case_id} speed_path={speed_path}: relative error {err:.3e}"


def test_block_weights_accept_newlines_and_spaces(comfy_host, tiny_model, network):
    raw, hypernetwork, speed_path = network
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=12)
    reference = s.reference_eps(tiny_model, [raw], x, SIGMA, context,
                                weight=_group_weight({"input": 1.0, "middle": 1.0, "output": 1.0},
                                                     {("input", 5): 0.25, ("output", 0): 0.0}))
    profiled = s.strength_node(comfy_host, hypernetwork, block_weights="  input 5 : 0.25\noutput 0:0 ,")
    patched = s.apply_node(comfy_host, tiny_model, profiled, speed_path=speed_path)
    err = s.rel_err(s.eps(patched, x, SIGMA, context), reference)
    assert err <= TOL, err


# --- step range -----------------------------------------------------------------------------------

START, END = 0.2, 0.7


def _sigma_at(model, percent: float) -> float:
    return model.get_model_object("model_sampling").percent_to_sigma(percent)


def _next_float32(value: float, direction: float) -> float:
    return float(torch.nextafter(torch.tensor(value, dtype=torch.float32), torch.tensor(direction)))


# (label, percent or a float32 step off a range end, active?) for one batch row each.
def _range_points(model):
    sigma_start, sigma_end = _sigma_at(model, START), _sigma_at(model, END)
    return {
        "before start": (_sigma_at(model, 0.1), False),
        "just before start": (_next_float32(sigma_start, 1e9), False),
        "at start": (sigma_start, True),
        "inside": (_sigma_at(model, 0.45), True),
        "at end": (sigma_end, True),
        "just after end": (_next_float32(sigma_end, 0.0), False),
        "after end": (_sigma_at(model, 0.9), False),
    }


def test_step_range_per_batch_row(comfy_host, tiny_model, network):
    """One model call, each batch row at its own sigma around and on the range ends (as a sampler
    batches rows): rows outside are bit-identical to the unpatched model, rows inside equal the
    full-range hypernetwork. Both range ends are included (ConditioningSetTimestepRange's rule)."""
    raw, hypernetwork, speed_path = network
    points = _range_points(tiny_model)
    rows = torch.tensor([sigma for sigma, _ in points.values()])
    x, context = s.models.seeded_inputs(tiny_model, batch=len(points), seed=13)
    ranged = s.apply_node(comfy_host, tiny_model,
                          s.strength_node(comfy_host, hypernetwork, start_percent=START, end_percent=END),
                          speed_path=speed_path)
    out = s.eps_rows(ranged, x, rows, context)
    plain = s.eps_rows(tiny_model, x, rows, context)
    full = s.eps_rows(s.apply_node(comfy_host, tiny_model, hypernetwork, speed_path=speed_path), x, rows, context)
    for row, (label, (sigma, active)) in enumerate(points.items()):
        if not active:
            assert torch.equal(out[row], plain[row]), (
                f"{label} (sigma {sigma!r}) must be unpatched: relative error {s.rel_err(out[row], plain[row]):.3e}")
            continue
        assert s.rel_err(full[row], plain[row]) > 1e-3, f"{label}: the hypernetwork has no effect here"
        # The exact path computes the same thing; a folded full-range network may round differently.
        err = s.rel_err(out[row], full[row])
        assert err <= TOL, f"{label} (sigma {sigma!r}): relative error {err:.3e} to the full-range model"


@pytest.mark.parametrize("label", ["just before start", "at start", "at end", "just after end"])
def test_step_range_whole_batch_at_one_sigma(comfy_host, tiny_model, network, label):
    """The usual case, every row at the step's sigma, exactly on and just off the range ends."""
    raw, hypernetwork, speed_path = network
    sigma, active = _range_points(tiny_model)[label]
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=14)
    ranged = s.apply_node(comfy_host, tiny_model,
                          s.strength_node(comfy_host, hypernetwork, start_percent=START, end_percent=END),
                          speed_path=speed_path)
    out = s.models.unet_forward(ranged, x, sigma, context)
    if not active:
        assert torch.equal(out, s.models.unet_forward(tiny_model, x, sigma, context)), f"{label} must be unpatched"
        return
    full = s.models.unet_forward(s.apply_node(comfy_host, tiny_model, hypernetwork, speed_path=speed_path),
                                 x, sigma, context)
    err = s.rel_err((x - out) / sigma, (x - full) / sigma)
    assert err <= TOL, f"{label} (sigma {sigma!r}): relative error {err:.3e} to the full-range model"


def test_step_range_checked_against_reference_inside(comfy_host, tiny_model, network):
    raw, hypernetwork, speed_path = network
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=14)
    sigma = _sigma_at(tiny_model, 0.45)
    reference = s.reference_eps(tiny_model, [raw], x, sigma, context)
    ranged = s.apply_node(comfy_host, tiny_model,
                          s.strength_node(comfy_host, hypernetwork, start_percent=START, end_percent=END),
                          speed_path=speed_path)
    err = s.rel_err(s.eps(ranged, x, sigma, context), reference)
    assert err <= TOL, err


def test_full_range_percent_is_plain_apply(comfy_host, tiny_model, network):
    raw, hypernetwork, speed_path = network
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=16)
    explicit = s.strength_node(comfy_host, hypernetwork, start_percent=0.0, end_percent=1.0)
    for sigma in (_sigma_at(tiny_model, 0.0001), 0.05):
        a = s.models.unet_forward(s.apply_node(comfy_host, tiny_model, explicit, speed_path=speed_path),
                                  x, sigma, context)
        b = s.models.unet_forward(s.apply_node(comfy_host, tiny_model, hypernetwork, speed_path=speed_path),
                                  x, sigma, context)
        assert torch.equal(a, b)


# --- bad profile inputs ---------------------------------------------------------------------------


@pytest.fixture
def plain_hypernetwork(comfy_host, hypernetwork_dir):
    return s.load_raw(comfy_host, hypernetwork_dir, "profile_bad.pt", make_raw_a1111_dict(dims=(768,), seed=3))


def test_start_after_end_is_a_clear_error(comfy_host, plain_hypernetwork):
    with pytest.raises(ValueError) as err:
        s.strength_node(comfy_host, plain_hypernetwork, start_percent=0.8, end_percent=0.3)
    message = str(err.value)
    assert "start_percent" in message and "end_percent" in message and "0.8" in message, message


@pytest.mark.parametrize("text, culprit", [
    ("input four: 0.5", "input four: 0.5"),
    ("middle 0 0.5", "middle 0 0.5"),
    ("upper 3: 1", "upper 3: 1"),
    ("input 4: lots", "input 4: lots"),
    ("input 4: 0.5, output 2", "output 2"),
    ("output 1: nan", "output 1: nan"),
])
def test_unparsable_block_weights_name_the_item(comfy_host, plain_hypernetwork, text, culprit):
    with pytest.raises(ValueError) as err:
        s.strength_node(comfy_host, plain_hypernetwork, block_weights=text)
    message = str(err.value)
    assert culprit in message and "Hypernetwork Strength" in message, message


@pytest.mark.parametrize("field", ["self_attention", "cross_attention", "input_blocks", "middle_block",
                                   "output_blocks"])
def test_nan_multiplier_is_a_clear_error(comfy_host, plain_hypernetwork, field):
    with pytest.raises(ValueError, match="finite"):
        s.strength_node(comfy_host, plain_hypernetwork, **{field: float("nan")})
