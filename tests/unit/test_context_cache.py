"""The cross-attention cache: computed once per distinct context, never stale."""
from __future__ import annotations

import torch

from hn_core import Hypernetwork, HypernetworkConfig
from hn_core.inference.patch import HypernetworkPatch

DIM = 16


def _counting_patch(attention="attn2", strength=1.0):
    network = Hypernetwork.create((DIM,), HypernetworkConfig(activation_func="relu", is_layer_norm=True), seed=3)
    for parameter in network.parameters():
        parameter.data.normal_(0, 0.2, generator=torch.Generator().manual_seed(parameter.numel()))
    calls = []
    transform = network.transform

    def counted(k, v, s):
        calls.append(s)
        return transform(k, v, s)

    network.transform = counted
    return HypernetworkPatch(network, strength, attention), transform, calls


def _context(seed):
    return torch.randn(2, 7, DIM, generator=torch.Generator().manual_seed(seed))


def test_same_context_in_every_layer_and_step_is_computed_once():
    patch, transform, calls = _counting_patch()
    with torch.inference_mode():
        for _step in range(3):
            context = _context(1).clone()  # a new tensor each step, as a sampler builds it
            for block in (("input", 1), ("middle", 0), ("output", 5)):
                _q, k, v = patch(None, context, context, {"block": block})
                expected_k, expected_v = transform(context, context, 1.0)
                assert torch.equal(k, expected_k) and torch.equal(v, expected_v)
    assert len(calls) == 1


def test_new_or_edited_context_is_recomputed():
    patch, transform, calls = _counting_patch()
    with torch.inference_mode():
        context = _context(1)
        patch(None, context, context, {})
        context.add_(1.0)  # the same tensor, edited in place
        _q, k, _v = patch(None, context, context, {})
        assert torch.equal(k, transform(context, context, 1.0)[0])
        other = _context(2)
        _q, k, _v = patch(None, other, other, {})
        assert torch.equal(k, transform(other, other, 1.0)[0])
    assert len(calls) == 3


def test_separate_values_and_per_layer_strengths_are_told_apart():
    patch, transform, calls = _counting_patch()
    patch.profile = patch.profile.__class__(input=0.5)
    with torch.inference_mode():
        context, values = _context(1), _context(4)
        _q, k_in, v_in = patch(None, context, values, {"block": ("input", 1)})
        _q, k_out, v_out = patch(None, context, values, {"block": ("output", 1)})
        _q, k_same, v_same = patch(None, context, context, {"block": ("output", 1)})
        assert torch.equal(k_in, transform(context, values, 0.5)[0])
        assert torch.equal(v_in, transform(context, values, 0.5)[1])
        assert torch.equal(v_out, transform(context, values, 1.0)[1])
        assert torch.equal(v_same, transform(context, context, 1.0)[1])
        assert not torch.equal(v_out, v_same)
    assert calls == [0.5, 1.0, 1.0]


def test_self_attention_and_autograd_are_never_cached():
    patch, _transform, calls = _counting_patch(attention="attn1")
    with torch.inference_mode():
        x = _context(1)
        patch(None, x, x, {})
        patch(None, x, x, {})
    cross, _t, cross_calls = _counting_patch()
    x = _context(1).requires_grad_(True)
    cross(None, x, x, {})
    cross(None, x, x, {})
    assert len(calls) == 2 and len(cross_calls) == 2


def test_a_result_kept_at_inference_is_never_handed_to_autograd():
    # A sampler fills the cache under inference mode; then a training clone that shares the patch
    # object (ComfyUI >= 0.33 clones share patches) runs the same context with autograd on.
    patch, transform, calls = _counting_patch()
    with torch.inference_mode():
        context = _context(1)
        patch(None, context, context, {})
    with torch.inference_mode(False):
        fresh = context.clone()  # a normal tensor with the same values
        weight = torch.ones(DIM, requires_grad=True)
        _q, k, v = patch(None, fresh, fresh, {})
        assert not k.is_inference() and not v.is_inference()
        ((k * weight).sum() + v.sum()).backward()  # autograd can save it
        assert torch.equal(k, transform(fresh, fresh, 1.0)[0])
    assert len(calls) == 2
