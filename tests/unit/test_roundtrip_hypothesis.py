"""create -> save (.pt and .safetensors) -> load must be lossless, for random structures.

Also: the ``.pt`` hn_core writes is a real A1111 file, i.e. the independent reference reads it
and computes the same forward pass.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open

import hn_core
from tests.reference.a1111_reference import reference_transform

ACTIVATIONS = [
    "linear", "relu", "leakyrelu", "elu", "swish", "tanh", "sigmoid", "gelu", "silu", "mish",
    "softsign", "softplus", "prelu", "selu", "celu", "relu6", "hardtanh", "logsigmoid",
    "hardswish", "hardsigmoid", "tanhshrink", "rrelu",
]
INITS = ["Normal", "XavierUniform", "XavierNormal", "KaimingUniform", "KaimingNormal"]
SMALL_DIMS = [8, 12, 16, 24, 32, 64]
REAL_DIMS = [320, 640, 768, 1024, 1280, 2048]

text = st.text(max_size=40)  # full unicode, incl. astral and control characters


@st.composite
def configs(draw):
    hidden = draw(st.lists(st.sampled_from([0.25, 0.5, 1, 1.5, 2, 3]), min_size=0, max_size=3))
    layer_structure = tuple([1, *hidden, 1])
    dropout_mode = draw(st.sampled_from(["none", "derived", "explicit"]))
    use_dropout = False
    last_layer_dropout = draw(st.booleans())
    dropout_structure = None
    if dropout_mode == "derived":
        use_dropout = True
    elif dropout_mode == "explicit":
        use_dropout = True
        inner = draw(
            st.lists(st.sampled_from([0.0, 0.1, 0.3, 0.5]), min_size=len(hidden), max_size=len(hidden))
        )
        dropout_structure = tuple([0.0, *inner, 0.0])
    return hn_core.HypernetworkConfig(
        layer_structure=layer_structure,
        activation_func=draw(st.sampled_from(ACTIVATIONS)),
        is_layer_norm=draw(st.booleans()),
        weight_initialization=draw(st.sampled_from(INITS)),
        use_dropout=use_dropout,
        dropout_structure=dropout_structure,
        activate_output=draw(st.booleans()),
        last_layer_dropout=last_layer_dropout,
    )


@st.composite
def infos(draw):
    return hn_core.HypernetworkInfo(
        name=draw(st.text(min_size=1, max_size=30)),
        step=draw(st.integers(min_value=0, max_value=10**7)),
        sd_checkpoint=draw(st.none() | st.text(alphabet="0123456789abcdef", min_size=8, max_size=10)),
        sd_checkpoint_name=draw(st.none() | text),
        optional_info=draw(st.none() | text),
    )


dims_strategy = st.one_of(
    st.lists(st.sampled_from(SMALL_DIMS), min_size=1, max_size=3, unique=True),
    st.lists(st.sampled_from(REAL_DIMS), min_size=1, max_size=1, unique=True),
)


def _state_dicts(net):
    return {dim: tuple(m.state_dict() for m in net.pair(dim)) for dim in net.dims}


def _assert_same_tensors(a, b):
    assert sorted(a.dims) == sorted(b.dims)
    sa, sb = _state_dicts(a), _state_dicts(b)
    for dim in a.dims:
        for ma, mb in zip(sa[dim], sb[dim]):
            assert list(ma) == list(mb)
            for key in ma:
                assert ma[key].dtype == mb[key].dtype, (dim, key)
                assert torch.equal(ma[key], mb[key]), (dim, key)


def _assert_same_forward(a, b, seed):
    gen = torch.Generator().manual_seed(seed)
    for dim in a.dims:
        k = torch.randn(2, 3, dim, generator=gen)
        v = torch.randn(2, 3, dim, generator=gen)
        with torch.no_grad():
            ka, va = a.transform(k, v, 0.9)
            kb, vb = b.transform(k, v, 0.9)
        assert torch.equal(ka, kb) and torch.equal(va, vb)


def _pt_content(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _st_content(path):
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def _assert_equal_raw(a, b):
    assert set(a) == set(b)
    for key in a:
        va, vb = a[key], b[key]
        if type(key) is int:
            assert len(va) == len(vb) == 2
            for sa, sb in zip(va, vb):
                assert list(sa) == list(sb)
                for t in sa:
                    assert torch.equal(sa[t], sb[t])
        else:
            assert va == vb, key


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=configs(), info=infos(), dims=dims_strategy, seed=st.integers(0, 2**31 - 1))
def test_create_save_load_roundtrip(tmp_path, config, info, dims, seed):
    net = hn_core.Hypernetwork.create(dims, config, info=info, seed=seed)
    assert sorted(net.dims) == sorted(dims)

    pt = tmp_path / "net.pt"
    sft = tmp_path / "net.safetensors"
    hn_core.save_hypernetwork(net, pt)
    hn_core.save_hypernetwork(net, sft)

    for path in (pt, sft):
        loaded = hn_core.load_hypernetwork(path)
        _assert_same_tensors(net, loaded)
        assert loaded.config == net.config, path.suffix
        assert loaded.info == net.info, path.suffix
        _assert_same_forward(net, loaded, seed)
        assert loaded.parameter_count() == net.parameter_count()

        # save -> load -> save again: same content
        again = tmp_path / f"again{path.suffix}"
        hn_core.save_hypernetwork(loaded, again)
        if path.suffix == ".pt":
            _assert_equal_raw(_pt_content(path), _pt_content(again))
        else:
            t1, m1 = _st_content(path)
            t2, m2 = _st_content(again)
            assert m1 == m2
            assert set(t1) == set(t2)
            for key in t1:
                assert torch.equal(t1[key], t2[key]), key
        _assert_same_tensors(net, hn_core.load_hypernetwork(again))

    # the .pt hn_core writes is an A1111 file: the independent reference reads it and agrees
    raw = _pt_content(pt)
    gen = torch.Generator().manual_seed(seed + 1)
    for dim in dims:
        k = torch.randn(2, 3, dim, generator=gen)
        v = torch.randn(2, 3, dim, generator=gen)
        exp_k, exp_v = reference_transform(raw, k, v, 0.9)
        with torch.no_grad():
            got_k, got_v = net.transform(k, v, 0.9)
        torch.testing.assert_close(got_k, exp_k, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(got_v, exp_v, rtol=1e-6, atol=1e-6)

    # A1111 metadata in the .pt, under A1111's key names
    assert list(raw["layer_structure"]) == list(config.layer_structure)
    assert raw["activation_func"] == config.activation_func
    assert raw["is_layer_norm"] == config.is_layer_norm
    assert raw["activate_output"] == config.activate_output
    assert raw["name"] == info.name
    assert raw["step"] == info.step
    assert raw.get("sd_checkpoint") == info.sd_checkpoint
    assert raw.get("sd_checkpoint_name") == info.sd_checkpoint_name
    assert raw.get("optional_info") == info.optional_info


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=configs(), seed=st.integers(0, 2**31 - 1))
def test_same_seed_same_network(tmp_path, config, seed):
    a = hn_core.Hypernetwork.create([16, 24], config, seed=seed)
    b = hn_core.Hypernetwork.create([16, 24], config, seed=seed)
    _assert_same_tensors(a, b)


def test_config_is_frozen():
    cfg = hn_core.HypernetworkConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.activation_func = "relu"  # type: ignore[misc]
