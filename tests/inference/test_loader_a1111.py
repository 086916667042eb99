"""The one-node loader, HypernetworkLoaderA1111: a drop-in for ComfyUI's built-in HypernetworkLoader
(same inputs, read from the host's own class) whose output is bit-identical to the pack's
LoadHypernetwork -> ApplyHypernetwork, on the speed path (folded) and on the patch path.
"""
from __future__ import annotations

import pytest
import torch

from tests.inference import support as s
from tests.reference.a1111_reference import make_raw_a1111_dict

NODE = "HypernetworkLoaderA1111"
SIGMA = 1.5
TINY_DIMS = (32, 64, 128, 768)
CASES = {
    # folded: a linear network over the whole schedule goes into to_k/to_v
    "linear": dict(activation="linear", std=0.02),
    # patched: anything non-linear runs before the projections
    "relu-layernorm": dict(activation="relu", is_layer_norm=True, std=0.05),
    "gelu-deep": dict(activation="gelu", layer_structure=(1, 1.5, 2, 1), std=0.05),
}


def one_node(comfy_host, model, name: str, strength: float):
    (patched,) = s.run_node(comfy_host, NODE, model=model, hypernetwork_name=name, strength=strength)
    return patched


def _combo_options(spec) -> list:
    kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
    return list(kind) if isinstance(kind, (list, tuple)) else list(options.get("options", []))


@pytest.mark.parametrize("case_id", sorted(CASES))
@pytest.mark.parametrize("strength", [1.0, 0.7, -0.4])
def test_output_is_bit_identical_to_load_then_apply(comfy_host, hypernetwork_dir, tiny_model, case_id, strength):
    name = s.write_raw(hypernetwork_dir, f"one_node_{case_id}.pt",
                       make_raw_a1111_dict(TINY_DIMS, seed=len(case_id), **CASES[case_id]))
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=41)

    ours = one_node(comfy_host, tiny_model, name, strength)
    two_nodes = s.apply_node(comfy_host, tiny_model, s.load_node(comfy_host, name)[0], strength, speed_path=True)
    assert s.is_folded(ours) == s.is_folded(two_nodes) == (case_id == "linear")

    out = s.eps(ours, x, SIGMA, context)
    assert torch.equal(out, s.eps(two_nodes, x, SIGMA, context))
    # Not vacuous: the network changes the output, and the input model is left as it was.
    assert s.rel_err(out, s.plain_eps(tiny_model, x, SIGMA, context)) > 1e-4
    assert not tiny_model.object_patches and "patches" not in tiny_model.model_options["transformer_options"]


def test_strength_zero_is_the_model_itself(comfy_host, hypernetwork_dir, tiny_model):
    name = s.write_raw(hypernetwork_dir, "one_node_zero.pt", make_raw_a1111_dict(TINY_DIMS, activation="tanh"))
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=42)
    out = s.eps(one_node(comfy_host, tiny_model, name, 0.0), x, SIGMA, context)
    assert torch.equal(out, s.plain_eps(tiny_model, x, SIGMA, context))


def test_inputs_and_output_match_the_builtin_loader(comfy_host, hypernetwork_dir):
    # A file in a subfolder and one with a suffix only the built-in lists: both lists must agree.
    (hypernetwork_dir / "sub").mkdir(exist_ok=True)
    s.write_raw(hypernetwork_dir, "sub/one_node_nested.pt", make_raw_a1111_dict(TINY_DIMS))
    (hypernetwork_dir / "one_node_other.bin").write_bytes(b"not read here")

    builtin = comfy_host.node_class("HypernetworkLoader").INPUT_TYPES()
    ours = comfy_host.node_class(NODE).INPUT_TYPES()
    # Same widgets in the same order: a saved built-in node's widgets_values mean the same here.
    assert list(ours["required"]) == list(builtin["required"]) == ["model", "hypernetwork_name", "strength"]
    assert set(ours) - {"hidden"} == set(builtin) - {"hidden"}
    assert ours["required"]["model"][0] == builtin["required"]["model"][0] == "MODEL"
    names = _combo_options(ours["required"]["hypernetwork_name"])
    assert names == _combo_options(builtin["required"]["hypernetwork_name"])
    assert {"sub/one_node_nested.pt", "one_node_other.bin"} <= set(names)
    keys = ("default", "min", "max", "step")
    theirs_strength = builtin["required"]["strength"]
    assert ours["required"]["strength"][0] == theirs_strength[0] == "FLOAT"
    assert {k: ours["required"]["strength"][1].get(k) for k in keys} == {k: theirs_strength[1].get(k) for k in keys}
    assert tuple(comfy_host.node_class(NODE).RETURN_TYPES) == tuple(comfy_host.node_class("HypernetworkLoader").RETURN_TYPES)


def test_a_nested_name_from_the_builtin_list_loads(comfy_host, hypernetwork_dir, tiny_model):
    (hypernetwork_dir / "sub").mkdir(exist_ok=True)
    name = s.write_raw(hypernetwork_dir, "sub/one_node_sub.pt", make_raw_a1111_dict(TINY_DIMS, activation="elu"))
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=43)
    out = s.eps(one_node(comfy_host, tiny_model, name, 1.0), x, SIGMA, context)
    assert torch.equal(out, s.eps(s.apply_node(comfy_host, tiny_model, s.load_node(comfy_host, name)[0]), x, SIGMA,
                                  context))


def test_errors_name_the_file(comfy_host, hypernetwork_dir, tiny_model):
    (hypernetwork_dir / "one_node_junk.bin").write_bytes(b"not a pickle at all")
    with pytest.raises(Exception, match="one_node_junk.bin"):
        one_node(comfy_host, tiny_model, "one_node_junk.bin", 1.0)
    with pytest.raises(Exception, match="no_such_file.pt"):
        one_node(comfy_host, tiny_model, "no_such_file.pt", 1.0)


def test_is_changed_follows_the_file_on_disk(comfy_host, hypernetwork_dir):
    cls = comfy_host.node_class(NODE)
    path = hypernetwork_dir / s.write_raw(hypernetwork_dir, "one_node_changed.pt", make_raw_a1111_dict(TINY_DIMS))
    before = cls.IS_CHANGED(hypernetwork_name="one_node_changed.pt", strength=1.0)
    s.file_mtime_bump(path)
    assert cls.IS_CHANGED(hypernetwork_name="one_node_changed.pt", strength=1.0) != before
