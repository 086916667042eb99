"""hn_core's forward pass against the independent A1111 reference (tests/reference).

Every file here is a raw A1111-style dict written with ``torch.save``, loaded with
``hn_core.load_hypernetwork`` and compared with ``reference_transform`` on the same raw dict.
"""

from __future__ import annotations

import pytest
import torch

import hn_core
from tests.reference.a1111_reference import (
    a1111_activation_dict,
    build_reference_pairs,
    make_raw_a1111_dict,
    reference_chain,
    reference_transform,
)

RTOL = 1e-6
ATOL = 1e-6

# Names in A1111's table that A1111 cannot actually run in a hypernetwork: they need
# constructor arguments (threshold, multiheadattention) or change the width (glu halves it).
# softmax2d is left out as well: it only accepts 3-D/4-D input and normalises over dim -3,
# which is not a per-token activation.
UNRUNNABLE = {"threshold", "multiheadattention", "glu", "softmax2d"}
RUNNABLE_ACTIVATIONS = sorted(set(a1111_activation_dict()) - UNRUNNABLE)


def _save(tmp_path, raw, name="x.pt"):
    path = tmp_path / name
    torch.save(raw, path)
    return path


def _inputs(dim, seed=123, batch=2, tokens=5):
    gen = torch.Generator().manual_seed(seed)
    k = torch.randn(batch, tokens, dim, generator=gen)
    v = torch.randn(batch, tokens, dim, generator=gen)
    return k, v


def _assert_matches(raw, net, dims, strength=1.0, seed=123):
    for dim in dims:
        k, v = _inputs(dim, seed)
        exp_k, exp_v = reference_transform(raw, k.clone(), v.clone(), strength)
        with torch.no_grad():
            got_k, got_v = net.transform(k.clone(), v.clone(), strength)
        torch.testing.assert_close(got_k, exp_k, rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(got_v, exp_v, rtol=RTOL, atol=ATOL)
        # the MLP must actually do something, or the comparison proves nothing
        if strength != 0:
            assert not torch.equal(exp_k, k)
            assert not torch.equal(exp_v, v)


def _load_and_compare(tmp_path, raw, strength=1.0, name="x.pt"):
    path = _save(tmp_path, raw, name)
    net = hn_core.load_hypernetwork(path)
    dims = [d for d in raw if type(d) is int]
    assert sorted(net.dims) == sorted(dims)
    _assert_matches(raw, net, dims, strength)
    return net


def test_runnable_activation_list_is_what_we_expect():
    # Guard against the parametrisation silently shrinking.
    expected = {
        "linear", "relu", "leakyrelu", "elu", "swish", "tanh", "sigmoid", "gelu", "silu", "mish",
        "softsign", "softplus", "prelu", "selu", "celu", "relu6", "hardtanh", "logsigmoid",
        "hardswish", "hardsigmoid", "hardshrink", "softshrink", "tanhshrink", "rrelu",
        "softmax", "softmin", "logsoftmax",
    }
    assert expected <= set(RUNNABLE_ACTIVATIONS)


@pytest.mark.parametrize("activate_output", [True, False, "missing"])
@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("activation", RUNNABLE_ACTIVATIONS + [None])
def test_every_activation(tmp_path, activation, layer_norm, activate_output):
    omit = ("activate_output",) if activate_output == "missing" else ()
    # hardshrink/softshrink zero everything below 0.5: larger weights keep the output non-trivial
    std = 0.6 if activation in ("hardshrink", "softshrink") else 0.1
    raw = make_raw_a1111_dict(
        std=std,
        dims=(8, 12),
        layer_structure=[1, 2, 1],
        activation=activation,
        is_layer_norm=layer_norm,
        activate_output=activate_output if activate_output != "missing" else False,
        omit=omit,
        seed=7,
    )
    _load_and_compare(tmp_path, raw)


def test_missing_activate_output_means_true(tmp_path):
    # A1111 defaults activate_output to True (ComfyUI's built-in loader: False). With relu the two
    # readings give different outputs, so this pins the default.
    raw = make_raw_a1111_dict(dims=(8,), activation="relu", omit=("activate_output",), seed=3)
    keys = list(raw[8][0])
    assert keys == ["linear.0.weight", "linear.0.bias", "linear.2.weight", "linear.2.bias"]
    net = _load_and_compare(tmp_path, raw)
    k, v = _inputs(8)
    with torch.no_grad():
        out = net.pair(8)[0](k)
    assert (out >= 0).all(), "the output activation (ReLU) must be applied when the key is missing"


@pytest.mark.parametrize(
    "layer_structure",
    [[1, 1], [1, 2, 1], [1, 1.5, 1.5, 1], [1, 0.5, 1], [1, 2, 2, 1], [1, 3, 0.5, 2, 1], [1, 0.25, 1]],
)
@pytest.mark.parametrize("dim", [7, 8, 10])
@pytest.mark.parametrize("activation,layer_norm", [("relu", False), ("tanh", True), ("linear", True)])
def test_layer_structures(tmp_path, layer_structure, dim, activation, layer_norm):
    # dim 7 with 1.5 -> int(10.5) = 10, with 0.5 -> 3: the width is truncated, not rounded
    raw = make_raw_a1111_dict(
        dims=(dim,), layer_structure=layer_structure, activation=activation, is_layer_norm=layer_norm, seed=11
    )
    _load_and_compare(tmp_path, raw)


def test_fractional_width_is_truncated(tmp_path):
    raw = make_raw_a1111_dict(dims=(7,), layer_structure=[1, 1.5, 0.5, 1], activation="relu", seed=2)
    assert raw[7][0]["linear.0.weight"].shape == (10, 7)
    assert raw[7][0]["linear.2.weight"].shape == (3, 10)
    net = _load_and_compare(tmp_path, raw)
    assert net.pair(7)[0].linear[0].weight.shape == (10, 7)


@pytest.mark.parametrize(
    "kwargs",
    [
        # explicit dropout structures
        dict(layer_structure=[1, 2, 1], dropout_structure=[0, 0.1, 0]),
        dict(layer_structure=[1, 2, 2, 1], dropout_structure=[0, 0.2, 0.5, 0]),
        dict(layer_structure=[1, 1.5, 1.5, 1], dropout_structure=[0, 0, 0.3, 0], is_layer_norm=True),
        dict(layer_structure=[1, 2, 2, 2, 1], dropout_structure=[0, 0.3, 0, 0.3, 0], activate_output=False),
        # derived from use_dropout / last_layer_dropout (dropout_structure missing)
        dict(layer_structure=[1, 2, 2, 1], use_dropout=True, omit=("dropout_structure",)),
        dict(layer_structure=[1, 2, 2, 1], use_dropout=True, last_layer_dropout=True, omit=("dropout_structure",)),
        dict(
            layer_structure=[1, 2, 2, 2, 1],
            use_dropout=True,
            last_layer_dropout=True,
            is_layer_norm=True,
            omit=("dropout_structure",),
        ),
        dict(layer_structure=[1, 2, 1], use_dropout=True, last_layer_dropout=True, omit=("dropout_structure",)),
        dict(layer_structure=[1, 2, 2, 1], use_dropout=False, last_layer_dropout=True, omit=("dropout_structure",)),
        # derived and written (as A1111 writes it)
        dict(layer_structure=[1, 2, 2, 1], use_dropout=True, last_layer_dropout=True),
    ],
)
@pytest.mark.parametrize("activation", ["relu", "prelu", "linear"])
def test_dropout_files(tmp_path, kwargs, activation):
    kwargs = dict(kwargs)
    raw = make_raw_a1111_dict(dims=(8, 16), activation=activation, seed=5, **kwargs)
    net = _load_and_compare(tmp_path, raw)
    # the module layout (dropouts shift indices) must be the file's
    ref_pairs = build_reference_pairs(raw)
    for dim in (8, 16):
        for got, exp in zip(net.pair(dim), ref_pairs[dim]):
            assert list(got.state_dict()) == list(exp.state_dict())
            assert len(got.linear) == len(exp.linear)


def test_derived_dropout_shifts_indices(tmp_path):
    # [1, 2, 2, 1] + use_dropout + last_layer_dropout, no dropout_structure key:
    # 0 Linear, 1 ReLU, 2 Dropout, 3 Linear, 4 ReLU, 5 Dropout, 6 Linear, 7 ReLU
    raw = make_raw_a1111_dict(
        dims=(8,),
        layer_structure=[1, 2, 2, 1],
        activation="relu",
        use_dropout=True,
        last_layer_dropout=True,
        omit=("dropout_structure",),
    )
    assert [k for k in raw[8][0] if k.endswith("weight")] == [
        "linear.0.weight",
        "linear.3.weight",
        "linear.6.weight",
    ]
    net = _load_and_compare(tmp_path, raw)
    assert isinstance(net.pair(8)[0].linear[2], torch.nn.Dropout)
    assert isinstance(net.pair(8)[0].linear[5], torch.nn.Dropout)


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("activate_output", [True, False])
def test_prelu_carries_weight(tmp_path, layer_norm, activate_output):
    raw = make_raw_a1111_dict(
        dims=(8,), activation="prelu", is_layer_norm=layer_norm, activate_output=activate_output, seed=9
    )
    assert "linear.1.weight" in raw[8][0] and raw[8][0]["linear.1.weight"].shape == (1,)
    net = _load_and_compare(tmp_path, raw)
    k_mod = net.pair(8)[0]
    assert torch.equal(k_mod.state_dict()["linear.1.weight"], raw[8][0]["linear.1.weight"])


def test_swish_is_hardswish(tmp_path):
    raw = make_raw_a1111_dict(dims=(8,), activation="swish", seed=4)
    net = _load_and_compare(tmp_path, raw)
    assert isinstance(net.pair(8)[0].linear[1], torch.nn.Hardswish)
    # and not SiLU: the two give different numbers on the same file
    raw_silu = dict(raw, activation_func="silu")
    k, v = _inputs(8)
    assert not torch.allclose(reference_transform(raw, k, v)[0], reference_transform(raw_silu, k, v)[0])


@pytest.mark.parametrize("pair_type", [list, tuple])
def test_novelai_legacy_file(tmp_path, pair_type):
    raw = make_raw_a1111_dict(dims=(320, 640, 768, 1280), legacy_novelai=True, pair_type=pair_type, seed=6)
    assert not any(isinstance(k, str) for k in raw), "NovelAI originals carry no metadata"
    net = _load_and_compare(tmp_path, raw)
    k_mod = net.pair(768)[0]
    sd = k_mod.state_dict()
    assert set(sd) == {"linear.0.weight", "linear.0.bias", "linear.1.weight", "linear.1.bias"}
    assert torch.equal(sd["linear.0.weight"], raw[768][0]["linear1.weight"])
    assert torch.equal(sd["linear.1.bias"], raw[768][0]["linear2.bias"])


@pytest.mark.parametrize("pair_type", [list, tuple])
def test_pair_list_or_tuple(tmp_path, pair_type):
    raw = make_raw_a1111_dict(
        dims=(8, 16), layer_structure=[1, 1.5, 1], activation="gelu", is_layer_norm=True, pair_type=pair_type, seed=8
    )
    assert isinstance(raw[8], pair_type)
    _load_and_compare(tmp_path, raw)


def test_layer_structure_stored_as_tuple(tmp_path):
    raw = make_raw_a1111_dict(dims=(8,), layer_structure=[1, 2, 2, 1], activation="elu", seed=8)
    raw["layer_structure"] = tuple(raw["layer_structure"])
    raw["dropout_structure"] = tuple(raw["dropout_structure"])
    _load_and_compare(tmp_path, raw)


def test_all_metadata_missing_uses_a1111_defaults(tmp_path):
    all_keys = (
        "layer_structure", "activation_func", "is_layer_norm", "weight_initialization", "use_dropout",
        "dropout_structure", "activate_output", "last_layer_dropout", "optional_info", "name", "step",
        "sd_checkpoint", "sd_checkpoint_name",
    )
    raw = make_raw_a1111_dict(dims=(8, 16), omit=all_keys, seed=12)
    assert all(type(k) is int for k in raw)
    net = _load_and_compare(tmp_path, raw)
    assert tuple(net.config.layer_structure) == (1, 2, 1)
    assert net.config.activate_output is True


def test_v_stream_uses_v_module(tmp_path):
    raw = make_raw_a1111_dict(dims=(8,), activation="relu", seed=13)
    net = _load_and_compare(tmp_path, raw)
    k, _ = _inputs(8)
    with torch.no_grad():
        got_k, got_v = net.transform(k, k.clone())
    assert not torch.allclose(got_k, got_v), "k and v must go through different MLPs"
    mk, mv = net.pair(8)
    with torch.no_grad():
        torch.testing.assert_close(got_k, k + mk(k), rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(got_v, k + mv(k), rtol=RTOL, atol=ATOL)


def test_pair_modules_match_reference_mlp(tmp_path):
    # module(x) is the MLP alone, without the residual
    raw = make_raw_a1111_dict(dims=(8,), layer_structure=[1, 2, 2, 1], activation="mish", is_layer_norm=True, seed=14)
    net = _load_and_compare(tmp_path, raw)
    ref_k, ref_v = build_reference_pairs(raw)[8]
    k, v = _inputs(8)
    with torch.no_grad():
        torch.testing.assert_close(net.pair(8)[0](k), ref_k(k), rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(net.pair(8)[1](v), ref_v(v), rtol=RTOL, atol=ATOL)
        assert isinstance(net.pair(8)[0].linear, torch.nn.Sequential)


@pytest.mark.parametrize("strength", [0.0, 0.35, 1.0, 2.5, -1.0])
def test_strength(tmp_path, strength):
    raw = make_raw_a1111_dict(dims=(8,), activation="leakyrelu", is_layer_norm=True, seed=15)
    net = _load_and_compare(tmp_path, raw, strength=strength)
    if strength == 0.0:
        k, v = _inputs(8)
        with torch.no_grad():
            got_k, got_v = net.transform(k, v, 0.0)
        assert torch.equal(got_k, k) and torch.equal(got_v, v)


def test_absent_dim_unchanged(tmp_path):
    raw = make_raw_a1111_dict(dims=(8, 16), activation="relu", seed=16)
    path = _save(tmp_path, raw)
    net = hn_core.load_hypernetwork(path)
    k, v = _inputs(12)
    with torch.no_grad():
        got_k, got_v = net.transform(k, v)
    assert torch.equal(got_k, k) and torch.equal(got_v, v)


def test_real_sd_dims(tmp_path):
    raw = make_raw_a1111_dict(
        dims=(320, 640, 768, 1280), layer_structure=[1, 1.5, 1.5, 1], activation="relu", is_layer_norm=True, seed=17
    )
    _load_and_compare(tmp_path, raw)


def test_chain_of_two(tmp_path):
    raw1 = make_raw_a1111_dict(dims=(8, 16), activation="relu", is_layer_norm=True, seed=21)
    raw2 = make_raw_a1111_dict(dims=(8,), layer_structure=[1, 0.5, 1], activation="tanh", seed=22)
    net1 = hn_core.load_hypernetwork(_save(tmp_path, raw1, "a.pt"))
    net2 = hn_core.load_hypernetwork(_save(tmp_path, raw2, "b.pt"))
    for dim in (8, 16):
        k, v = _inputs(dim)
        exp_k, exp_v = reference_chain([raw1, raw2], k, v, [0.8, 1.3])
        with torch.no_grad():
            k1, v1 = net1.transform(k, v, 0.8)
            got_k, got_v = net2.transform(k1, v1, 1.3)
        torch.testing.assert_close(got_k, exp_k, rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(got_v, exp_v, rtol=RTOL, atol=ATOL)
    # order matters: the chain is not commutative
    k, v = _inputs(8)
    ab = reference_chain([raw1, raw2], k, v)
    ba = reference_chain([raw2, raw1], k, v)
    assert not torch.allclose(ab[0], ba[0])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(layer_structure=[1, 2, 2, 1], use_dropout=True, last_layer_dropout=True, omit=("dropout_structure",)),
        dict(layer_structure=[1, 2, 2, 1], dropout_structure=[0, 0.5, 0.5, 0], is_layer_norm=True),
    ],
)
def test_inference_is_deterministic_with_dropout(tmp_path, kwargs):
    raw = make_raw_a1111_dict(dims=(16,), activation="relu", seed=30, **kwargs)
    net = hn_core.load_hypernetwork(_save(tmp_path, raw))
    k, v = _inputs(16, tokens=64)
    with torch.no_grad():
        a = net.transform(k, v)
        b = net.transform(k, v)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # also outside no_grad, and through the pair modules directly
    c = net.transform(k, v)
    assert torch.equal(a[0], c[0].detach()) and torch.equal(a[1], c[1].detach())
    mk, _ = net.pair(16)
    assert torch.equal(mk(k).detach(), mk(k).detach())
    # and equal to the eval-mode reference, which has dropout switched off
    exp = reference_transform(raw, k, v)
    torch.testing.assert_close(a[0], exp[0], rtol=RTOL, atol=ATOL)
