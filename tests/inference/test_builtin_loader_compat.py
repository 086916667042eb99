"""Issue 2: files written by hn_core, read by ComfyUI's own built-in hypernetwork loader
(``comfy_extras.nodes_hypernetwork.load_hypernetwork_patch``), patch a model to the same UNet output
as our LoadHypernetwork -> ApplyHypernetwork, for every option the built-in loader supports:
its nine activations, layer norm (with ``activate_output`` true: the built-in mis-builds layer norm
networks otherwise), no dropout, fractional layer structures.

The second part documents, as assertions, the built-in loader's known faults on ComfyUI 0.3.75
that we differ on (ours follows A1111, checked against the from-spec reference).
"""
from __future__ import annotations

import pytest
import torch

from tests.inference import support as s
from tests.reference.a1111_reference import make_raw_a1111_dict

TOL = 1e-5
SIGMA = 1.5
TINY_DIMS = (32, 64, 128, 768)
BUILTIN_ACTIVATIONS = ("linear", "relu", "leakyrelu", "elu", "swish", "tanh", "sigmoid", "softsign", "mish")


def _builtin_patch_fn():
    from comfy_extras.nodes_hypernetwork import load_hypernetwork_patch

    return load_hypernetwork_patch


def builtin_patched(model, path, strength: float = 1.0):
    """What ComfyUI's HypernetworkLoader node does: one patch object on attn1 and attn2 of a clone."""
    with torch.inference_mode():
        patch = _builtin_patch_fn()(str(path), strength)
    assert patch is not None, f"ComfyUI's loader refused {path}"
    patched = model.clone()
    patched.set_model_attn1_patch(patch)
    patched.set_model_attn2_patch(patch)
    return patched


def write_with_hn_core(comfy_host, directory, filename, *, dims=TINY_DIMS, layer_structure=(1, 2, 1),
                       activation="linear", layer_norm=False, activate_output=True, std=0.03, seed=0):
    """A network built and saved by the pack's own hn_core, weights randomised to trained-like scales.

    (hn_core's Normal init gives LayerNorm gains near 0, which would hide most of the network.)
    """
    hn_core = comfy_host.pack_module("hn_core")
    config = hn_core.HypernetworkConfig(layer_structure=tuple(layer_structure), activation_func=activation,
                                        is_layer_norm=layer_norm, activate_output=activate_output)
    net = hn_core.Hypernetwork.create(dims, config, hn_core.HypernetworkInfo(name=filename), seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(1 + std * torch.randn(module.weight.shape, generator=gen))
                module.bias.copy_(std * torch.randn(module.bias.shape, generator=gen))
            elif isinstance(module, torch.nn.Linear):
                module.weight.copy_(std * torch.randn(module.weight.shape, generator=gen))
                module.bias.copy_(std * torch.randn(module.bias.shape, generator=gen))
    path = directory / filename
    hn_core.save_hypernetwork(net, path)
    return path


CASES = {
    **{f"{a}": dict(activation=a) for a in BUILTIN_ACTIVATIONS},
    **{f"{a}-layernorm": dict(activation=a, layer_norm=True) for a in ("linear", "relu", "tanh", "mish", "swish")},
    "relu-no-activate-output": dict(activation="relu", activate_output=False),
    "sigmoid-no-activate-output": dict(activation="sigmoid", activate_output=False),
    "fractional-swish-layernorm": dict(activation="swish", layer_norm=True, layer_structure=(1, 1.5, 1.5, 1)),
    "fractional-elu-narrow": dict(activation="elu", layer_structure=(1, 0.5, 1)),
    "fractional-softsign-odd": dict(activation="softsign", layer_structure=(1, 1.25, 0.75, 1)),
    "linear-deep": dict(activation="linear", layer_structure=(1, 2, 2, 1), std=0.01),
    "linear-foldable": dict(activation="linear", std=0.01, strength=0.7),
    "leakyrelu-strength": dict(activation="leakyrelu", std=0.05, strength=-0.6),
}
FOLDABLE = {"linear-deep", "linear-foldable"}


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_builtin_loader_reads_our_files_like_we_do(comfy_host, hypernetwork_dir, tiny_model, case_id):
    options = dict(CASES[case_id])
    strength = options.pop("strength", 1.0)
    filename = f"compat_{case_id}.pt"
    path = write_with_hn_core(comfy_host, hypernetwork_dir, filename, seed=len(case_id), **options)
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=30)

    builtin = s.eps(builtin_patched(tiny_model, path, strength), x, SIGMA, context)
    plain = s.plain_eps(tiny_model, x, SIGMA, context)
    assert s.rel_err(plain, builtin) > 1e-3, "the network barely changes the output: the check would be vacuous"
    hypernetwork = s.load_node(comfy_host, filename)[0]
    for speed_path in (False, True):
        patched = s.apply_node(comfy_host, tiny_model, hypernetwork, strength, speed_path=speed_path)
        if speed_path and case_id in FOLDABLE:
            assert s.is_folded(patched)
        err = s.rel_err(s.eps(patched, x, SIGMA, context), builtin)
        assert err <= TOL, f"{case_id} speed_path={speed_path}: relative error {err:.3e} to ComfyUI's loader"


def test_builtin_loader_on_sd15_shapes(comfy_host, hypernetwork_dir, sd15_model):
    """The four SD1 dims on the real SD1.5 UNet, one nonlinear and one linear file."""
    x, context = s.models.seeded_inputs(sd15_model, batch=1, size=8, seed=31)
    for key, options in {"relu_ln": dict(activation="relu", layer_norm=True, std=0.02),
                         "linear": dict(activation="linear", std=0.01)}.items():
        filename = f"compat_sd15_{key}.pt"
        path = write_with_hn_core(comfy_host, hypernetwork_dir, filename, dims=(320, 640, 768, 1280), seed=3,
                                  **options)
        builtin = s.eps(builtin_patched(sd15_model, path), x, SIGMA, context)
        hypernetwork = s.load_node(comfy_host, filename)[0]
        for speed_path in (False, True):
            err = s.rel_err(s.eps(s.apply_node(comfy_host, sd15_model, hypernetwork, 1.0, speed_path), x, SIGMA,
                                  context), builtin)
            assert err <= TOL, f"sd15 {key} speed_path={speed_path}: relative error {err:.3e}"


# --- the built-in loader's faults, documented (ComfyUI 0.3.75) -----------------------------------------
# Each test shows the built-in result differs from A1111 (the from-spec reference) while ours matches.


def _ours_and_reference(comfy_host, model, filename, raw, x, context):
    s.write_raw(model_dir := comfy_host.model_dir("hypernetworks"), filename, raw)
    reference = s.reference_eps(model, [raw], x, SIGMA, context)
    ours = s.eps(s.apply_node(comfy_host, model, s.load_node(comfy_host, filename)[0]), x, SIGMA, context)
    return model_dir / filename, ours, reference


def test_fault_missing_activate_output_key_read_as_false(comfy_host, tiny_model):
    """A1111 reads a missing ``activate_output`` as True; the built-in loader reads False."""
    raw = make_raw_a1111_dict(dims=TINY_DIMS, activation="relu", omit=("activate_output",), std=0.05, seed=40)
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=32)
    path, ours, reference = _ours_and_reference(comfy_host, tiny_model, "fault_no_activate_output.pt", raw, x, context)
    builtin = s.eps(builtin_patched(tiny_model, path), x, SIGMA, context)
    assert s.rel_err(ours, reference) <= TOL
    assert s.rel_err(builtin, reference) > 1e-3, "the built-in loader now reads a missing activate_output as A1111"


def test_fault_layer_norm_with_activation_gets_an_extra_activation(comfy_host, tiny_model):
    """Layer norm + activation + activate_output False: the built-in activates the last Linear too."""
    raw = make_raw_a1111_dict(dims=TINY_DIMS, activation="tanh", is_layer_norm=True, activate_output=False,
                              std=0.05, seed=41)
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=33)
    path, ours, reference = _ours_and_reference(comfy_host, tiny_model, "fault_ln_extra_act.pt", raw, x, context)
    builtin = s.eps(builtin_patched(tiny_model, path), x, SIGMA, context)
    assert s.rel_err(ours, reference) <= TOL
    assert s.rel_err(builtin, reference) > 1e-3


def test_fault_dropout_stays_active_at_inference(comfy_host, tiny_model):
    """The built-in loader never puts its modules in eval mode: two identical runs differ. Ours do not."""
    raw = make_raw_a1111_dict(dims=TINY_DIMS, activation="relu", layer_structure=(1, 2, 2, 1), use_dropout=True,
                              std=0.05, seed=42)
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=34)
    path, ours, reference = _ours_and_reference(comfy_host, tiny_model, "fault_dropout.pt", raw, x, context)
    builtin_model = builtin_patched(tiny_model, path)
    first, second = (s.models.unet_forward(builtin_model, x, SIGMA, context) for _ in range(2))
    assert not torch.equal(first, second), "the built-in loader now disables dropout at inference"
    patched = s.apply_node(comfy_host, tiny_model, s.load_node(comfy_host, "fault_dropout.pt")[0])
    assert torch.equal(s.models.unet_forward(patched, x, SIGMA, context),
                       s.models.unet_forward(patched, x, SIGMA, context))
    assert s.rel_err(ours, reference) <= TOL


def test_fault_unknown_activation_leaves_the_model_unpatched(comfy_host, tiny_model):
    """``gelu`` (valid in A1111) is refused by the built-in loader (it returns None and the node
    returns the model unpatched); ours applies it as A1111 does."""
    raw = make_raw_a1111_dict(dims=TINY_DIMS, activation="gelu", std=0.05, seed=43)
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=35)
    path, ours, reference = _ours_and_reference(comfy_host, tiny_model, "fault_gelu.pt", raw, x, context)
    with torch.inference_mode():
        assert _builtin_patch_fn()(str(path), 1.0) is None
    assert s.rel_err(ours, reference) <= TOL


def test_fault_manual_cast_crashes_builtin_but_not_ours(comfy_host, hypernetwork_dir):
    """fp16 weights computed in fp32 (ComfyUI's manual cast): ComfyUI moves the built-in patch to the
    weight dtype, so its fp16 Linears meet fp32 activations. Ours runs."""
    low = s.tiny_sd1_in(torch.float16, torch.float32)
    path = write_with_hn_core(comfy_host, hypernetwork_dir, "fault_cast.pt", activation="relu", seed=44)
    x, context = s.models.seeded_inputs(low, batch=1, seed=36)
    with pytest.raises(RuntimeError, match="same dtype"):
        s.eps(builtin_patched(low, path), x, SIGMA, context)
    out = s.eps(s.apply_node(comfy_host, low, s.load_node(comfy_host, "fault_cast.pt")[0], 1.0, False), x, SIGMA, context)
    assert torch.isfinite(out).all()
