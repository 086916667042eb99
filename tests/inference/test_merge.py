"""Issue 11, Merge Hypernetworks on a real ComfyUI: Load -> Merge -> Apply / Save, on the tiny UNet.

* exact stack: Apply(merged, 1) equals the inputs chained through Apply at their weights and the
  A1111 reference chain;
* weighted sum: Apply(merged) equals the A1111 reference of a file whose tensors the test averages;
* the merged file written by Save Hypernetwork patches the UNet through ComfyUI's built-in loader
  (``comfy_extras.nodes_hypernetwork``) exactly as our Apply does, and reloads equal;
* strength profiles and refusals, as the node reports them.
"""
from __future__ import annotations

import pytest
import torch

from tests.inference import support as s
from tests.inference.test_builtin_loader_compat import builtin_patched
from tests.reference.a1111_reference import make_raw_a1111_dict

TOL = 1e-5
SIGMA = 1.5
TINY_DIMS = (32, 64, 128, 768)


def merge_node(comfy_host, mode, hypernetworks, weights):
    inputs = {}
    for n, (hypernetwork, weight) in enumerate(zip(hypernetworks, weights), start=1):
        inputs[f"hypernetwork_{n}"], inputs[f"weight_{n}"] = hypernetwork, weight
    merged, summary = s.run_node(comfy_host, "MergeHypernetworks", mode=mode, **inputs)
    return merged, summary


def save_node(comfy_host, hypernetwork, filename):
    out = s.run_node(comfy_host, "SaveHypernetwork", hypernetwork=hypernetwork, filename=filename,
                     format="pt (A1111)", overwrite=True)
    return out["result"][0]


def _loaded(comfy_host, hypernetwork_dir, raws, prefix):
    return [s.load_raw(comfy_host, hypernetwork_dir, f"{prefix}_{n}.pt", raw) for n, raw in enumerate(raws, 1)]


LINEAR_STACK = [dict(dims=TINY_DIMS, layer_structure=(1, 2, 1), std=0.02, seed=51),
                dict(dims=(32, 64, 768), layer_structure=(1, 1), std=0.03, seed=52)]  # no dim 128
BOTTLENECK_STACK = [dict(dims=TINY_DIMS, layer_structure=(1, 0.125, 1), std=0.05, seed=53),
                    dict(dims=TINY_DIMS, layer_structure=(1, 2, 0.25, 1), std=0.05, seed=54)]
STACKS = {"single-layer": (LINEAR_STACK, (1, 1)), "wide": (BOTTLENECK_STACK, (1, 0.375, 1))}


@pytest.mark.parametrize("case", sorted(STACKS))
def test_exact_stack_equals_the_chain_of_apply_nodes(comfy_host, hypernetwork_dir, tiny_model, case):
    specs, structure = STACKS[case]
    raws = [make_raw_a1111_dict(**spec) for spec in specs]
    weights = [0.8, -0.6]
    inputs = _loaded(comfy_host, hypernetwork_dir, raws, f"stack_{case}")
    merged, summary = merge_node(comfy_host, "exact stack", inputs, weights)
    assert merged.network.config.layer_structure == structure
    assert f"layer_structure {list(structure)}" in summary
    if case == "single-layer":
        assert "dim 128: only hypernetwork_1 (stack_single-layer_1.pt)" in summary

    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=50)
    reference = s.reference_eps(tiny_model, raws, x, SIGMA, context, strengths=weights)
    assert s.rel_err(s.plain_eps(tiny_model, x, SIGMA, context), reference) > 1e-3, "vacuous check"
    chained = tiny_model
    for hypernetwork, weight in zip(inputs, weights):
        chained = s.apply_node(comfy_host, chained, hypernetwork, weight, speed_path=False)
    chained_eps = s.eps(chained, x, SIGMA, context)
    assert s.rel_err(chained_eps, reference) <= TOL
    for speed_path in (False, True):
        patched = s.apply_node(comfy_host, tiny_model, merged, 1.0, speed_path=speed_path)
        assert s.is_folded(patched) == speed_path
        out = s.eps(patched, x, SIGMA, context)
        assert s.rel_err(out, chained_eps) <= TOL, f"speed_path={speed_path}: {s.rel_err(out, chained_eps):.2e}"
        assert s.rel_err(out, reference) <= TOL


def _mean_raw(raws, weights):
    """The weighted mean of raw dicts of one structure, tensor by tensor; metadata of the first."""
    total = sum(weights)
    mean = dict(raws[0])
    for dim in (key for key in raws[0] if isinstance(key, int)):
        mean[dim] = [{key: sum(w * raw[dim][role][key] for w, raw in zip(weights, raws)) / total
                      for key in raws[0][dim][role]} for role in (0, 1)]
    return mean


NONLINEAR = dict(dims=TINY_DIMS, activation="tanh", is_layer_norm=True, std=0.05)


def test_weighted_sum_node_applies_as_the_averaged_file(comfy_host, tiny_model, hypernetwork_dir):
    raws = [make_raw_a1111_dict(seed=seed, **NONLINEAR) for seed in (55, 56)]
    weights = [3.0, 1.0]
    merged, _ = merge_node(comfy_host, "weighted sum", _loaded(comfy_host, hypernetwork_dir, raws, "blend"), weights)
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=51)
    reference = s.reference_eps(tiny_model, [_mean_raw(raws, weights)], x, SIGMA, context)
    assert s.rel_err(s.plain_eps(tiny_model, x, SIGMA, context), reference) > 1e-3, "vacuous check"
    out = s.eps(s.apply_node(comfy_host, tiny_model, merged), x, SIGMA, context)
    assert s.rel_err(out, reference) <= TOL


SAVED = {
    "exact-stack-single-layer": ("exact stack", LINEAR_STACK, [1.0, 0.5]),
    "exact-stack-wide": ("exact stack", BOTTLENECK_STACK, [0.7, 1.1]),
    "weighted-sum-tanh-layernorm": ("weighted sum", [dict(seed=57, **NONLINEAR), dict(seed=58, **NONLINEAR)],
                                    [0.5, 0.5]),
}


@pytest.mark.parametrize("case", sorted(SAVED))
def test_saved_merge_loads_in_comfyui_builtin_loader(comfy_host, hypernetwork_dir, tiny_model, case):
    mode, specs, weights = SAVED[case]
    raws = [make_raw_a1111_dict(**spec) for spec in specs]
    merged, _ = merge_node(comfy_host, mode, _loaded(comfy_host, hypernetwork_dir, raws, f"saved_{case}"), weights)
    filename = save_node(comfy_host, merged, f"merged/{case}")
    path = hypernetwork_dir / filename
    assert path.is_file()

    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=52)
    ours = s.eps(s.apply_node(comfy_host, tiny_model, merged, 1.0, speed_path=False), x, SIGMA, context)
    assert s.rel_err(s.plain_eps(tiny_model, x, SIGMA, context), ours) > 1e-3, "vacuous check"
    builtin = s.eps(builtin_patched(tiny_model, path), x, SIGMA, context)
    assert s.rel_err(builtin, ours) <= TOL, f"{case}: built-in loader differs by {s.rel_err(builtin, ours):.2e}"
    if mode == "exact stack":
        reference = s.reference_eps(tiny_model, raws, x, SIGMA, context, strengths=weights)
        assert s.rel_err(builtin, reference) <= TOL

    reloaded, _, _ = s.load_node(comfy_host, filename)
    assert reloaded.network.info.name == case  # Save names a nameless merge after its file
    assert reloaded.network.config == merged.network.config
    for (key, a), b in zip(merged.network.state_dict().items(), reloaded.network.state_dict().values()):
        assert torch.equal(a, b), key


def test_a_shared_profile_travels_with_the_exact_stack(comfy_host, hypernetwork_dir, tiny_model):
    """Both inputs cross-attention only: the merged network keeps that profile and equals the chain."""
    raws = [make_raw_a1111_dict(**spec) for spec in LINEAR_STACK]
    inputs = [s.strength_node(comfy_host, hypernetwork, self_attention=0.0)
              for hypernetwork in _loaded(comfy_host, hypernetwork_dir, raws, "profiled")]
    merged, _ = merge_node(comfy_host, "exact stack", inputs, [1.0, 1.0])
    assert merged.profile.attn1 == 0.0
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=53)
    reference = s.reference_eps(tiny_model, raws, x, SIGMA, context,
                                weight=lambda block, index, kind: 0.0 if kind == "attn1" else 1.0)
    out = s.eps(s.apply_node(comfy_host, tiny_model, merged), x, SIGMA, context)
    assert s.rel_err(out, reference) <= TOL


def test_node_refusals_name_the_input_and_file(comfy_host, hypernetwork_dir):
    linear, relu = (make_raw_a1111_dict(dims=(32,), activation=a, seed=59) for a in ("linear", "relu"))
    inputs = [s.load_raw(comfy_host, hypernetwork_dir, name, raw)
              for name, raw in (("refuse_linear.pt", linear), ("refuse_relu.pt", relu))]
    with pytest.raises(ValueError, match=r"^Merge Hypernetworks: hypernetwork_2 \(refuse_relu\.pt\) uses "
                                         r"activation 'relu'"):
        merge_node(comfy_host, "exact stack", inputs, [1.0, 1.0])
    with pytest.raises(ValueError, match=r"hypernetwork_2 \(refuse_relu\.pt\) has activation_func 'relu'"):
        merge_node(comfy_host, "weighted sum", inputs, [1.0, 1.0])
    profiled = s.strength_node(comfy_host, inputs[1], cross_attention=0.5)
    with pytest.raises(ValueError, match=r"hypernetwork_2 \(refuse_relu\.pt\) carries a different strength"):
        merge_node(comfy_host, "weighted sum", [inputs[1], profiled], [1.0, 1.0])


def test_node_takes_up_to_four_inputs_and_skips_empty_sockets(comfy_host, hypernetwork_dir):
    raws = [make_raw_a1111_dict(dims=(32,), seed=60 + n) for n in range(3)]
    a, b, c = _loaded(comfy_host, hypernetwork_dir, raws, "four")
    merged, summary = s.run_node(comfy_host, "MergeHypernetworks", mode="weighted sum",
                                 hypernetwork_1=a, weight_1=1.0, hypernetwork_2=b, weight_2=1.0,
                                 weight_3=5.0, hypernetwork_4=c, weight_4=2.0)
    assert "hypernetwork_3" not in summary and "hypernetwork_4 (four_3.pt) x2" in summary
    expected = (raws[0][32][0]["linear.0.weight"] + raws[1][32][0]["linear.0.weight"]
                + 2 * raws[2][32][0]["linear.0.weight"]) / 4
    torch.testing.assert_close(merged.network.pair(32)[0].linear[0].weight, expected, rtol=0, atol=1e-6)
    spec = comfy_host.node_class("MergeHypernetworks").INPUT_TYPES()
    for group in ("required", "optional"):
        for name, (_type, options) in spec[group].items():
            assert options.get("tooltip"), f"{name} has no tooltip"
