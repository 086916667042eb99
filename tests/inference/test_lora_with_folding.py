"""Issue 9: a LoRA plus a folded hypernetwork on the same to_k / to_v give the exact path's output.

CPU routes here: full load (LoRA baked into the weight), low-VRAM load (LoRA as per-call weight
functions, the route DynamicVRAM resembles) and, on ComfyUI >= 0.33, a ``ModelPatcherDynamic``
constructed for the CPU (which ComfyUI turns into a plain ModelPatcher: the dynamic route itself
needs CUDA and comfy-aimdo; scripts/gpu_dynamic_vram_check.py runs it, first in scripts/gpu_check.sh).
"""
from __future__ import annotations

import pytest
import torch

from tests.inference import lora_folding as lf
from tests.inference import support as s

TOL = 1e-5
CUDA_TOL = 1e-4  # cuDNN convolutions may use TF32 on the GPU


@pytest.fixture
def setup(comfy_host, hypernetwork_dir, tiny_model):
    lora = lf.write_lora(comfy_host.model_dir("loras"), tiny_model)
    hypernetwork = lf.linear_hypernetwork(comfy_host, hypernetwork_dir)
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=40)
    return lora, hypernetwork, x, context


def _assert_equal_paths(outputs: dict) -> None:
    errors = lf.path_errors(outputs)
    # Folded == exact in both orders, and the LoRA really acts on the folded model (the bug dropped it).
    assert lf.paths_agree(errors, TOL), errors


def test_full_load(comfy_host, tiny_model, setup):
    lora, hypernetwork, x, context = setup
    variants = lf.variants(comfy_host, tiny_model, hypernetwork, lora)
    _assert_equal_paths({k: s.eps(m, x, lf.SIGMA, context) for k, m in variants.items()})


def test_apply_while_a_lora_clone_is_loaded(comfy_host, tiny_model, setup):
    """ComfyUI keeps the last model loaded, with its LoRA baked into the shared layers and the layers
    flagged as patched. Apply run then must neither carry that clone's weights into its stand-ins nor
    inherit its flags (which made the next load skip the stand-ins: the LoRA of the folded model was
    lost), and unloading must leave the original layers and weights."""
    import comfy.model_management as mm

    lora, hypernetwork, x, context = setup
    before = {k: v.clone() for k, v in tiny_model.model.diffusion_model.state_dict().items()}
    with_lora = lf.with_lora(comfy_host, tiny_model, lora)
    s.eps(with_lora, x, lf.SIGMA, context)  # loaded now: the LoRA is in the layers' weights
    models = {}  # all applied while the LoRA clone is loaded
    for speed_path, tag in ((True, "folded"), (False, "exact")):
        models[f"lora+hn {tag}"] = s.apply_node(comfy_host, with_lora, hypernetwork, 1.0, speed_path)
        models[f"hn {tag}, no lora"] = s.apply_node(comfy_host, tiny_model, hypernetwork, 1.0, speed_path)
    outputs = {k: s.eps(m, x, lf.SIGMA, context) for k, m in models.items()}
    errors = {"lora+hn": s.rel_err(outputs["lora+hn folded"], outputs["lora+hn exact"]),
              "hn, no lora": s.rel_err(outputs["hn folded, no lora"], outputs["hn exact, no lora"]),
              "lora effect": s.rel_err(outputs["lora+hn folded"], outputs["hn folded, no lora"])}
    assert errors["lora+hn"] <= TOL and errors["hn, no lora"] <= TOL and errors["lora effect"] > 1e-3, errors

    mm.unload_all_models()
    assert not lf.stand_ins(tiny_model)
    after = tiny_model.model.diffusion_model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_stand_in_shares_its_layers_state(comfy_host, tiny_model, setup):
    """A stand-in is its layer with another forward: what ComfyUI sets on the live one (weights,
    flags) the other has too; its own state stays off the original; a deep copy is a working twin."""
    import copy

    _lora, hypernetwork, _x, _context = setup
    folded = s.apply_node(comfy_host, tiny_model, hypernetwork, 1.0, True)
    stand_in = next(v for v in folded.object_patches.values() if hasattr(v, "hn_records"))
    original = stand_in.hn_original
    assert not hasattr(original, "hn_records") and stand_in.weight is original.weight
    stand_in.comfy_patched_weights = True
    assert original.comfy_patched_weights is True
    del stand_in.comfy_patched_weights
    assert not hasattr(original, "comfy_patched_weights")
    twin = copy.deepcopy(stand_in)
    assert twin.hn_records == stand_in.hn_records and twin.hn_original is not original
    assert twin.weight is not original.weight and torch.equal(twin.weight, original.weight)
    inputs = torch.randn(2, 5, original.in_features, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        assert torch.equal(twin(inputs), stand_in(inputs))


def test_low_vram_weight_functions(comfy_host, tiny_model, setup):
    lora, hypernetwork, x, context = setup
    outputs = {}
    for key, model in lf.variants(comfy_host, tiny_model, hypernetwork, lora).items():
        with lf.loaded_low_vram(model):
            folded = lf.stand_ins(model)
            if "folded" in key and "no lora" not in key:
                # The route under test: the LoRA reaches the stand-in only as a per-call weight function.
                assert folded and all(m.weight_function for m in folded)
            outputs[key] = lf.direct_eps(model, x, lf.SIGMA, context)
    _assert_equal_paths(outputs)


def test_model_patcher_dynamic_on_cpu(comfy_host, tiny_model, setup):
    import comfy.model_patcher
    import comfy.supported_models

    dynamic_cls = getattr(comfy.model_patcher, "ModelPatcherDynamic", None)
    if dynamic_cls is None:
        pytest.skip("this ComfyUI has no ModelPatcherDynamic (added after 0.3.75)")
    lora, hypernetwork, x, context = setup
    # A model of its own: a second patcher family on the shared tiny UNet would keep its own
    # object-patch backups, and the stand-ins it installed would outlive it there (ComfyUI itself
    # never puts two patcher families on one model: a loader builds each its own).
    base = s.models.build(comfy.supported_models.SD15, s.models.TINY_SD1_UNET, seed=0)
    patcher = dynamic_cls(base.model, base.load_device, base.offload_device)
    if not torch.cuda.is_available():
        assert not patcher.is_dynamic()  # ComfyUI reroutes a CPU load device to the plain patcher
    variants = lf.variants(comfy_host, patcher, hypernetwork, lora)
    _assert_equal_paths({k: s.eps(m, x, lf.SIGMA, context) for k, m in variants.items()})


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_full_and_offloaded_loads(comfy_host, tiny_model, setup):
    """On CUDA: weights on the GPU (fused once) and weights left in RAM by a low-VRAM load (the
    stand-in asks ComfyUI for them per call and keeps no fused copy on the GPU)."""
    lora, hypernetwork, x, context = setup
    assert tiny_model.load_device.type == "cuda"
    variants = lf.variants(comfy_host, tiny_model, hypernetwork, lora)
    errors = lf.path_errors({k: s.eps(m, x, lf.SIGMA, context) for k, m in variants.items()})
    assert lf.paths_agree(errors, CUDA_TOL), errors
    outputs = {}
    for key, model in variants.items():
        with lf.loaded_low_vram(model):
            folded = lf.stand_ins(model)
            outputs[key] = lf.direct_eps(model, x, lf.SIGMA, context)
            assert not any(m.hn_fused_cached for m in folded if m.weight.device.type == "cpu")
    errors = lf.path_errors(outputs)
    assert lf.paths_agree(errors, CUDA_TOL), errors
