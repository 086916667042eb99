"""hn_core's LoRA export maths without ComfyUI: weight changes, the two dropped/moved biases, factors,
the linear fit, the script API. (The names are checked against ComfyUI's own tables in
tests/inference/test_lora_keys.py.)"""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from hn_core import Hypernetwork, HypernetworkConfig, StrengthProfile
from hn_core.export.linear_fit import AffineFit, NetworkFit
from hn_core.export.lora_export import AttentionWeights, ExportError
from hn_core.inference.strength_profile import block_of
from hn_core.export.lora_file import build_changes, export_lora, lora_state_dict
from hn_core.export.low_rank import factorize
from hn_core.export.lora_keys import kohya_name

LAYER = "input_blocks.1.1.transformer_blocks.0.attn1"


def _network(dims=(16,), activation="linear", seed=0, std=0.1):
    net = Hypernetwork.create(dims, HypernetworkConfig(layer_structure=(1, 2, 1), activation_func=activation), seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)  # biases too: both offsets matter
    return net


def _layer(dim=16, inner=16, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return AttentionWeights("attn1", ("input", 1), torch.randn(inner, dim, generator=gen),
                            torch.randn(inner, dim, generator=gen), torch.randn(dim, inner, generator=gen))


def _attention(x, w_q, w_k, w_v, w_out, b_out):
    """Single-head attention with a to_out bias, in float64."""
    q, k, v = x @ w_q.T, x @ w_k.T, x @ w_v.T
    weights = torch.softmax(q @ k.T / q.shape[-1] ** 0.5, dim=-1)
    return weights @ v @ w_out.T + b_out


def test_changes_reproduce_the_patched_attention_exactly():
    net, layer = _network(), _layer()
    changes, unused = build_changes(net, {LAYER: layer}, strength=0.7)
    change = changes[LAYER]
    assert unused == [] and change.to_out_bias is not None
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(10, 16, generator=gen, dtype=torch.float64)
    w_q, b_out = torch.randn(16, 16, generator=gen, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    key_mlp, value_mlp = (copy.deepcopy(m).double() for m in net.pair(16))
    w_k, w_v, w_out = layer.to_k.double(), layer.to_v.double(), layer.to_out.double()
    # A1111: the key/value inputs are rewritten before to_k / to_v (self-attention: both are x).
    q, k_in, v_in = x @ w_q.T, x + 0.7 * key_mlp(x), x + 0.7 * value_mlp(x)
    weights = torch.softmax(q @ (k_in @ w_k.T).T / 4.0, dim=-1)
    want = weights @ (v_in @ w_v.T) @ w_out.T + b_out
    got = _attention(x, w_q, w_k + change.to_k, w_v + change.to_v, w_out, b_out + change.to_out_bias)
    assert torch.allclose(got, want, rtol=0, atol=1e-12 * float(want.abs().max()))
    # Without the to_out bias, the value offset is really lost (so the report is right to mention it).
    dropped = _attention(x, w_q, w_k + change.to_k, w_v + change.to_v, w_out, b_out)
    assert float((dropped - want).abs().max()) > 1e-3


def test_strength_profile_scales_each_layer_and_zero_leaves_it_out():
    net = _network()
    layers = {LAYER: _layer(), "output_blocks.3.1.transformer_blocks.0.attn1":
              dataclasses.replace(_layer(seed=3), block=block_of("output_blocks.3.1.transformer_blocks.0.attn1"))}
    profile = StrengthProfile(attn1=0.5, block_weights=((("output", 3), 0.0),))
    changes, _ = build_changes(net, layers, strength=2.0, profile=profile)
    assert list(changes) == [LAYER] and changes[LAYER].strength == 1.0
    with pytest.raises(ExportError, match="every step"):
        build_changes(net, layers, profile=StrengthProfile(end_percent=0.5))


def test_factorize_full_rank_is_exact_and_rank_r_reports_the_svd_tail():
    delta = torch.randn(12, 20, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    full = factorize(delta, 0)
    assert full.rank == 12 and full.relative_error == 0.0 and torch.equal(full.up @ full.down, delta)
    cut = factorize(delta, 5)
    measured = float((delta - cut.up @ cut.down).norm() / delta.norm())
    assert cut.rank == 5 and cut.relative_error == pytest.approx(measured, rel=1e-9)
    with pytest.raises(ValueError, match="outside 0..12"):
        factorize(delta, 13)


def test_rank_above_a_projection_is_refused_naming_it():
    changes, _ = build_changes(_network(), {LAYER: _layer()})
    with pytest.raises(ExportError, match=r"rank 17 .*attn1.to_k.*16x16.*at most 16"):
        lora_state_dict(changes, rank=17)


def test_non_linear_network_needs_a_fit():
    with pytest.raises(ExportError, match="not linear"):
        build_changes(_network(activation="relu"), {LAYER: _layer()})


def test_unused_dims_are_refused_when_nothing_matches_and_listed_otherwise():
    with pytest.raises(ExportError, match=r"dims \[24\] match no attention layer.*\[16\]"):
        build_changes(_network(dims=(24,)), {LAYER: _layer()})
    _changes, unused = build_changes(_network(dims=(16, 24)), {LAYER: _layer()})
    assert unused == [24]


def test_fit_recovers_an_affine_network_and_stays_tame_on_too_few_samples():
    net = _network(dims=(16,))
    fit = NetworkFit(net)
    fit.observe("attn1", torch.randn(400, 16, generator=torch.Generator().manual_seed(5)))
    (key_affine, value_affine) = fit.affines()[("attn1", 16)]
    exact = build_changes(net, {LAYER: _layer()})[0][LAYER]
    fitted = build_changes(net, {LAYER: _layer()}, affines={("attn1", 16): (key_affine, value_affine)})[0][LAYER]
    assert torch.allclose(fitted.to_k, exact.to_k, atol=1e-5) and torch.allclose(fitted.to_v, exact.to_v, atol=1e-5)
    # 8 samples of a 64-wide non-linear map: the fit must not blow up off the samples.
    wide = _network(dims=(64,), activation="tanh", std=0.3)
    few = AffineFit(64)
    x = torch.randn(8, 64, generator=torch.Generator().manual_seed(6))
    few.add(x, [wide.pair(64)[0](x)])
    ((matrix, offset), residual, expected) = few.solve()[0]
    new = torch.randn(200, 64, generator=torch.Generator().manual_seed(7))
    target = wide.pair(64)[0](new).double()
    error = float((new.double() @ matrix.T + offset - target).norm() / target.norm())
    assert expected >= residual and error < 1.5


def test_script_api_writes_a_kohya_file_atomically(tmp_path):
    from safetensors import safe_open

    net = _network(dims=(16,))
    path = tmp_path / "out.safetensors"
    summary = export_lora(net, {LAYER: _layer()}, path, res_blocks_per_level=[1, 1, 1], rank=3, dtype=torch.float16)
    with safe_open(str(path), "pt") as f:
        keys, metadata = set(f.keys()), f.metadata()
    stem = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1"
    assert {f"{stem}_to_k.lora_up.weight", f"{stem}_to_v.lora_down.weight", f"{stem}_to_k.alpha"} <= keys
    assert not any(k.endswith("diff_b") for k in keys) and summary.value_bias == "dropped"
    assert metadata["ss_network_dim"] == "3" and summary.truncation_error > 0
    with pytest.raises(ExportError):
        export_lora(net, {LAYER: _layer()}, tmp_path / "refused.safetensors", rank=99)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.safetensors"]


def test_one_alpha_for_every_module_and_the_change_kept_at_every_rank():
    """diffusers keeps one alpha for all modules (it ignores kohya per-module alphas), ComfyUI / A1111 /
    Forge scale each module by its own alpha / rank: with one alpha, up @ down * alpha / rank is the
    change in all of them, also when a full-rank file mixes ranks (16 and 24 wide projections here)."""
    net = _network(dims=(16, 24))
    layers = {LAYER: _layer(dim=16, inner=16), "input_blocks.3.1.transformer_blocks.0.attn1":
              dataclasses.replace(_layer(dim=24, inner=24, seed=5), block=("input", 3))}
    changes, _ = build_changes(net, layers, strength=0.6)
    for rank in (0, 3):
        state, summary = lora_state_dict(changes, rank=rank, res_blocks_per_level=[1, 1, 1])
        alphas = {float(v) for k, v in state.items() if k.endswith(".alpha")}
        assert alphas == {float(summary.alpha)}
        ranks = {state[k].shape[0] for k in state if k.endswith(".lora_down.weight")}
        assert ranks == ({16, 24} if rank == 0 else {3})
        for path, change in changes.items():
            for projection in ("to_k", "to_v"):
                stem = kohya_name(path, projection, sgm=False, res_blocks_per_level=[1, 1, 1])
                down = state[f"{stem}.lora_down.weight"].double()
                got = state[f"{stem}.lora_up.weight"].double() @ down * summary.alpha / down.shape[0]
                want = factorize(change.projection(projection), rank)
                want = want.up @ want.down
                assert float((got - want).norm() / want.norm()) < 1e-6, (stem, rank)
