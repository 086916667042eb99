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

    dynamic_cls = getattr(comfy.model_patcher, "ModelPatcherDynamic", None)
    if dynamic_cls is None:
        pytest.skip("this ComfyUI has no ModelPatcherDynamic (added after 0.3.75)")
    lora, hypernetwork, x, context = setup
    patcher = dynamic_cls(tiny_model.model, tiny_model.load_device, tiny_model.offload_device)
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
            assert not any("_hn_fused" in m.__dict__ for m in folded if m.weight.device.type == "cpu")
    errors = lf.path_errors(outputs)
    assert lf.paths_agree(errors, CUDA_TOL), errors
