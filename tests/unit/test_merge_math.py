"""hn_core.merge without ComfyUI: weighted sums of parameters, exact stacks of linear networks, errors.

Inputs are A1111-style raw dicts written to disk and read with ``hn_core.load_hypernetwork``; the
expectations come from the raw tensors and from the independent A1111 reference
(``tests/reference``), run in float64 for the exact stack.
"""
from __future__ import annotations

import torch
import pytest

import hn_core
from hn_core.merge import MergeInput, common_profile, dims_coverage, merge_hypernetworks
from tests.reference.a1111_reference import build_reference_pairs, make_raw_a1111_dict, reference_transform

EXACT_TOL = 1e-6  # float32 weights of a product taken in float64, against the float64 chain


def _load(tmp_path, raw, name):
    path = tmp_path / name
    torch.save(raw, path)
    return hn_core.load_hypernetwork(path)


def _inputs(tmp_path, raws, weights):
    return [MergeInput(_load(tmp_path, raw, f"in{n}.pt"), weight, f"hypernetwork_{n}")
            for n, (raw, weight) in enumerate(zip(raws, weights), start=1)]


def _tokens(dim, seed=0):
    return torch.randn(2, 5, dim, generator=torch.Generator().manual_seed(seed + dim))


def _chain64(raws, strengths, k, v):
    """A1111's chain, each network built by the reference and run in float64."""
    k, v = k.double(), v.double()
    for raw, strength in zip(raws, strengths):
        pairs = build_reference_pairs(raw)
        if k.shape[-1] in pairs:
            mlp_k, mlp_v = (module.double() for module in pairs[k.shape[-1]])
            with torch.no_grad():
                k, v = k + strength * mlp_k(k), v + strength * mlp_v(v)
    return k, v


def _rel(out, reference):
    out, reference = out.double(), reference.double()
    return float((out - reference).norm() / reference.norm())


def _saved_raw(tmp_path, network, name="merged.pt"):
    path = tmp_path / name
    hn_core.save_hypernetwork(network, path)
    return torch.load(path, weights_only=True)


# --- weighted sum ------------------------------------------------------------------------------------


def test_weighted_sum_is_the_weighted_mean_of_each_parameter(tmp_path):
    common = dict(layer_structure=(1, 2, 1), activation="tanh", is_layer_norm=True, std=0.05)
    raws = [make_raw_a1111_dict(dims=(16, 24), seed=1, **common),
            make_raw_a1111_dict(dims=(16, 24), seed=2, **common),
            make_raw_a1111_dict(dims=(16,), seed=3, **common)]
    weights = [2.0, 1.0, 1.0]
    merged = merge_hypernetworks(_inputs(tmp_path, raws, weights), "weighted sum")

    assert merged.dims == (16, 24)
    assert merged.config == _load(tmp_path, raws[0], "first.pt").config
    for dim, having in ((16, (0, 1, 2)), (24, (0, 1))):  # dim 24: the mean of the inputs that have it
        total = sum(weights[i] for i in having)
        for role, module in enumerate(merged.pair(dim)):
            state = module.state_dict()
            assert set(state) == set(raws[0][dim][role])
            for key, value in state.items():
                expected = sum(weights[i] * raws[i][dim][role][key].double() for i in having) / total
                torch.testing.assert_close(value.double(), expected, rtol=0, atol=1e-7)
    assert merged.info.step == 0 and merged.info.name is None
    assert "weighted sum" in merged.info.optional_info and "hypernetwork_3 x1" in merged.info.optional_info


def test_weighted_sum_saved_file_matches_the_a1111_reference(tmp_path):
    raws = [make_raw_a1111_dict(dims=(16,), activation="relu", activate_output=False, seed=s, std=0.1)
            for s in (4, 5)]
    merged = merge_hypernetworks(_inputs(tmp_path, raws, [0.25, 0.75]), "weighted sum")
    saved = _saved_raw(tmp_path, merged)
    assert saved["activate_output"] is False and saved["activation_func"] == "relu"
    k, v = _tokens(16), _tokens(16, seed=1)
    ours = merged.transform(k, v, 0.8)
    reference = reference_transform(saved, k, v, 0.8)
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_weighted_sum_pairs_layers_across_dropout_layouts(tmp_path):
    """Dropout shifts the state-dict indices but not the layers that carry weights."""
    with_dropout = make_raw_a1111_dict(dims=(8,), layer_structure=(1, 2, 2, 1), activation="relu",
                                       use_dropout=True, seed=6)
    without = make_raw_a1111_dict(dims=(8,), layer_structure=(1, 2, 2, 1), activation="relu", seed=7)
    assert set(with_dropout[8][0]) != set(without[8][0])
    merged = merge_hypernetworks(_inputs(tmp_path, [without, with_dropout], [1, 1]), "weighted sum")
    assert merged.config.dropout_structure == (0, 0, 0, 0)  # the first input's training setting
    state = merged.pair(8)[0].state_dict()
    a, b = without[8][0], with_dropout[8][0]
    b_linears = sorted(k for k in b if k.endswith(".weight"))
    for position, key in enumerate(sorted(k for k in a if k.endswith(".weight"))):
        expected = (a[key].double() + b[b_linears[position]].double()) / 2
        torch.testing.assert_close(state[key].double(), expected, rtol=0, atol=1e-7)


def test_linear_networks_may_differ_in_activate_output(tmp_path):
    raws = [make_raw_a1111_dict(dims=(8,), activate_output=flag, seed=n) for n, flag in enumerate((True, False))]
    merged = merge_hypernetworks(_inputs(tmp_path, raws, [1, 1]), "weighted sum")
    assert merged.config.activation_func == "linear"


# --- exact stack -------------------------------------------------------------------------------------

STACKS = {
    # name: (layer structures, dims per input, weights, expected result structure)
    "wide-and-single": ([(1, 2, 1), (1, 1)], [(16, 24), (16, 24)], [0.8, -0.5], (1, 1)),
    "three-deep-partial-dims": ([(1, 1.5, 1.5, 1), (1, 2, 1), (1, 0.5, 2, 1)], [(16, 24), (24, 40), (16, 40)],
                                [1.0, 0.7, 1.3], (1, 1)),
    "bottlenecks-odd-dims": ([(1, 0.3, 1), (1, 0.15, 1)], [(33, 40), (33,)], [1.2, 0.9], "wide"),
    "bottleneck-deep": ([(1, 2, 0.125, 1), (1, 0.25, 1)], [(32,), (32,)], [1.0, 1.0], "wide"),
}


@pytest.mark.parametrize("case", sorted(STACKS))
def test_exact_stack_equals_the_chain_in_float64(tmp_path, case):
    structures, dims, weights, expected_structure = STACKS[case]
    raws = [make_raw_a1111_dict(dims=d, layer_structure=ls, seed=n, std=0.08)
            for n, (ls, d) in enumerate(zip(structures, dims))]
    inputs = _inputs(tmp_path, raws, weights)
    merged = merge_hypernetworks(inputs, "exact stack")

    structure = merged.config.layer_structure
    if expected_structure == "wide":
        assert len(structure) == 3 and structure[1] < 0.5, structure
        total = sum(min(ls) for ls in structures)
        assert total <= structure[1] <= total + 0.05
    else:
        assert structure == expected_structure
    assert merged.config.activation_func == "linear" and not merged.config.is_layer_norm
    assert merged.dims == tuple(sorted({d for ds in dims for d in ds}))
    for dim in merged.dims:
        k, v = _tokens(dim), _tokens(dim, seed=1)
        ours = merged.transform(k, v, 1.0)
        chain = _chain64(raws, weights, k, v)
        assert _rel(chain[0], k) > 1e-2, "the chain barely changes its input: the check would be vacuous"
        for a, b in zip(ours, chain):
            assert _rel(a, b) < EXACT_TOL, f"{case} dim {dim}: relative error {_rel(a, b):.2e}"


@pytest.mark.parametrize("case", ["wide-and-single", "bottlenecks-odd-dims"])
def test_exact_stack_file_loads_strictly_in_the_a1111_reference(tmp_path, case):
    structures, dims, weights, _ = STACKS[case]
    raws = [make_raw_a1111_dict(dims=d, layer_structure=ls, seed=n, std=0.08)
            for n, (ls, d) in enumerate(zip(structures, dims))]
    merged = merge_hypernetworks(_inputs(tmp_path, raws, weights), "exact stack")
    saved = _saved_raw(tmp_path, merged)
    assert list(saved["layer_structure"]) == list(merged.config.layer_structure)
    assert saved["activation_func"] == "linear" and saved["is_layer_norm"] is False
    for dim in merged.dims:
        k, v = _tokens(dim), _tokens(dim, seed=2)
        reference = reference_transform(saved, k, v, 1.0)  # strict load_state_dict inside
        chain = _chain64(raws, weights, k, v)
        for a, b in zip(reference, chain):
            assert _rel(a, b) < EXACT_TOL


def test_merge_leaves_its_inputs_unchanged(tmp_path):
    raws = [make_raw_a1111_dict(dims=(16,), seed=n) for n in (1, 2)]
    inputs = _inputs(tmp_path, raws, [0.5, 2.0])
    before = [{k: t.clone() for k, t in item.network.state_dict().items()} for item in inputs]
    for mode in ("weighted sum", "exact stack"):
        merged = merge_hypernetworks(inputs, mode)
        assert all(p.data_ptr() != q.data_ptr() for p in merged.parameters()
                   for item in inputs for q in item.network.parameters())
    for item, state in zip(inputs, before):
        for key, tensor in item.network.state_dict().items():
            assert torch.equal(tensor, state[key])


@pytest.mark.parametrize("mode", ["weighted sum", "exact stack"])
def test_progress_is_reported_after_each_dim(tmp_path, mode):
    raws = [make_raw_a1111_dict(dims=(16, 24), seed=1), make_raw_a1111_dict(dims=(24, 40), seed=2)]
    calls = []
    merge_hypernetworks(_inputs(tmp_path, raws, [1, 1]), mode, on_dim=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_dims_coverage_names_the_inputs_of_partial_dims(tmp_path):
    raws = [make_raw_a1111_dict(dims=(16, 24), seed=1), make_raw_a1111_dict(dims=(24, 40), seed=2)]
    lines = dims_coverage(_inputs(tmp_path, raws, [1, 1]))
    assert lines == ["dim 16: only hypernetwork_1", "dim 40: only hypernetwork_2"]


# --- errors ------------------------------------------------------------------------------------------

ERRORS = {
    "weighted-sum-structure": ("weighted sum", [dict(), dict(layer_structure=(1, 1))], [1, 1],
                               r"hypernetwork_2 has layer_structure \[1, 1\].*same structure.*exact stack"),
    "weighted-sum-activation": ("weighted sum", [dict(activation="relu"), dict(activation="tanh")], [1, 1],
                                r"hypernetwork_2 has activation_func 'tanh' but hypernetwork_1 has 'relu'"),
    "weighted-sum-layer-norm": ("weighted sum", [dict(activation="relu", is_layer_norm=True),
                                                 dict(activation="relu")], [1, 1], r"hypernetwork_2 has is_layer_norm"),
    "weighted-sum-activate-output": ("weighted sum", [dict(activation="relu"),
                                                      dict(activation="relu", activate_output=False)], [1, 1],
                                     r"hypernetwork_2 has activate_output False"),
    "weighted-sum-zero-total": ("weighted sum", [dict(), dict()], [1, -1], r"dim 16 sum to zero"),
    "exact-stack-activation": ("exact stack", [dict(), dict(activation="relu")], [1, 1],
                               r"hypernetwork_2 uses activation 'relu'.*only for linear networks"),
    "exact-stack-layer-norm": ("exact stack", [dict(is_layer_norm=True), dict()], [1, 1],
                               r"hypernetwork_1 uses layer norm"),
    "weight-not-finite": ("exact stack", [dict(), dict()], [1, float("nan")], r"hypernetwork_2: weight must be a finite number"),
    "one-input": ("weighted sum", [dict()], [1], r"at least two"),
    "unknown-mode": ("average", [dict(), dict()], [1, 1], r"unknown merge mode 'average'"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_refusals_name_the_input_and_the_reason(tmp_path, case):
    mode, options, weights, pattern = ERRORS[case]
    raws = [make_raw_a1111_dict(dims=(16,), seed=n, **o) for n, o in enumerate(options)]
    with pytest.raises(ValueError, match=pattern):
        merge_hypernetworks(_inputs(tmp_path, raws, weights), mode)


# --- strength profiles -------------------------------------------------------------------------------

NEUTRAL = hn_core.StrengthProfile()
CROSS_ONLY_LATE = hn_core.StrengthProfile(attn1=0.0, start_percent=0.5)
HALF_MIDDLE = hn_core.StrengthProfile(middle=0.5)


def test_a_shared_profile_is_kept():
    assert common_profile([("a", CROSS_ONLY_LATE), ("b", CROSS_ONLY_LATE)], exact=True) == CROSS_ONLY_LATE
    assert common_profile([("a", HALF_MIDDLE), ("b", HALF_MIDDLE)], exact=False) == HALF_MIDDLE


def test_different_profiles_are_refused():
    with pytest.raises(ValueError, match="hypernetwork_2 carries a different strength profile"):
        common_profile([("hypernetwork_1", NEUTRAL), ("hypernetwork_2", CROSS_ONLY_LATE)], exact=False)


@pytest.mark.parametrize("profile", [HALF_MIDDLE, hn_core.StrengthProfile(block_weights=((("input", 4), 0.3),))],
                         ids=["group", "block"])
def test_exact_stack_refuses_multipliers_other_than_0_and_1(profile):
    with pytest.raises(ValueError, match=r"multiplier 0\.[35].*only at multipliers 0 and 1"):
        common_profile([("a", profile), ("b", profile)], exact=True)
