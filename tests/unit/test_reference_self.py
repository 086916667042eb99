"""Checks of the reference itself against hand-written maths, so it is not merely self-consistent."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.reference.a1111_reference import (
    build_reference_pairs,
    derive_dropout_structure,
    make_raw_a1111_dict,
    reference_chain,
    reference_transform,
    resolve_a1111_config,
)


def test_derived_dropout_structure():
    assert derive_dropout_structure([1, 2, 1], False, False) == [0, 0, 0]
    assert derive_dropout_structure([1, 2, 1], True, False) == [0, 0, 0]
    assert derive_dropout_structure([1, 2, 1], True, True) == [0, 0.3, 0]
    assert derive_dropout_structure([1, 2, 2, 1], True, False) == [0, 0.3, 0, 0]
    assert derive_dropout_structure([1, 2, 2, 1], True, True) == [0, 0.3, 0.3, 0]
    assert derive_dropout_structure([1, 2, 2, 2, 1], True, False) == [0, 0.3, 0.3, 0, 0]
    assert derive_dropout_structure([1, 2, 2, 1], False, True) == [0, 0, 0, 0]


def test_defaults():
    cfg = resolve_a1111_config({})
    assert cfg["layer_structure"] == [1, 2, 1]
    assert cfg["activation_func"] is None
    assert cfg["activate_output"] is True
    assert cfg["is_layer_norm"] is False
    assert cfg["dropout_structure"] == [0, 0, 0]


def test_linear_by_hand():
    raw = make_raw_a1111_dict(dims=(6,), activation="linear", seed=1)
    sd_k, sd_v = raw[6]
    k = torch.randn(2, 4, 6)
    v = torch.randn(2, 4, 6)
    exp_k = k + 0.5 * F.linear(F.linear(k, sd_k["linear.0.weight"], sd_k["linear.0.bias"]),
                                sd_k["linear.1.weight"], sd_k["linear.1.bias"])
    exp_v = v + 0.5 * F.linear(F.linear(v, sd_v["linear.0.weight"], sd_v["linear.0.bias"]),
                                sd_v["linear.1.weight"], sd_v["linear.1.bias"])
    got_k, got_v = reference_transform(raw, k, v, 0.5)
    torch.testing.assert_close(got_k, exp_k)
    torch.testing.assert_close(got_v, exp_v)


def test_relu_layernorm_by_hand():
    # [1, 2, 1], relu, layer norm, activate_output False:
    # 0 Linear(6,12) 1 ReLU 2 LayerNorm(12) 3 Linear(12,6) 4 LayerNorm(6)
    raw = make_raw_a1111_dict(dims=(6,), activation="relu", is_layer_norm=True, activate_output=False, seed=2)
    sd = raw[6][0]
    assert list(sd) == [
        "linear.0.weight", "linear.0.bias", "linear.2.weight", "linear.2.bias",
        "linear.3.weight", "linear.3.bias", "linear.4.weight", "linear.4.bias",
    ]
    x = torch.randn(3, 6)
    h = F.relu(F.linear(x, sd["linear.0.weight"], sd["linear.0.bias"]))
    h = F.layer_norm(h, (12,), sd["linear.2.weight"], sd["linear.2.bias"])
    h = F.linear(h, sd["linear.3.weight"], sd["linear.3.bias"])
    h = F.layer_norm(h, (6,), sd["linear.4.weight"], sd["linear.4.bias"])
    got_k, _ = reference_transform(raw, x, x)
    torch.testing.assert_close(got_k, x + h)


def test_layernorm_weights_random_around_one():
    raw = make_raw_a1111_dict(dims=(64,), activation="relu", is_layer_norm=True, seed=3)
    w = raw[64][0]["linear.2.weight"]
    assert abs(w.mean().item() - 1.0) < 0.1 and w.std().item() > 0.05


def test_legacy_keys_and_absent_dim():
    raw = make_raw_a1111_dict(dims=(4,), legacy_novelai=True, seed=4)
    sd = raw[4][0]
    x = torch.randn(5, 4)
    h = F.linear(F.linear(x, sd["linear1.weight"], sd["linear1.bias"]), sd["linear2.weight"], sd["linear2.bias"])
    torch.testing.assert_close(reference_transform(raw, x, x)[0], x + h)
    y = torch.randn(5, 3)
    assert reference_transform(raw, y, y)[0] is y


def test_chain_is_composition():
    a = make_raw_a1111_dict(dims=(4,), activation="tanh", seed=5)
    b = make_raw_a1111_dict(dims=(4,), activation="relu", seed=6)
    x, y = torch.randn(2, 4), torch.randn(2, 4)
    k1, v1 = reference_transform(a, x, y, 0.5)
    k2, v2 = reference_transform(b, k1, v1, 2.0)
    got = reference_chain([a, b], x, y, [0.5, 2.0])
    assert torch.equal(got[0], k2) and torch.equal(got[1], v2)


def test_modules_in_eval_mode():
    raw = make_raw_a1111_dict(dims=(4,), activation="relu", use_dropout=True, last_layer_dropout=True,
                              layer_structure=[1, 2, 2, 1])
    for m in build_reference_pairs(raw)[4]:
        assert not m.training
        assert any(isinstance(c, torch.nn.Dropout) for c in m.linear)
