"""A LoRA and a folded hypernetwork on the same to_k / to_v projections (issue 9, DynamicVRAM).

ComfyUI delivers a LoRA's weights in several ways: baked into the weight at load (full load),
as per-call ``weight_function`` patches (low VRAM), or, with DynamicVRAM (ComfyUI >= 0.33,
``ModelPatcherDynamic``), as ``weight_lowvram_function`` on weights streamed through a ``_v``
slot. The speed path's stand-in projection must see the LoRA in every case: the folded model's
output must equal the exact (unfolded) path's. Used by tests/inference/test_lora_with_folding.py
(CPU routes) and scripts/gpu_dynamic_vram_check.py (the dynamic route on CUDA).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from tests.inference import support as s
from tests.reference.a1111_reference import make_raw_a1111_dict

SIGMA = 1.5
TINY_DIMS = (32, 64, 128, 768)


def write_lora(loras_dir: Path, patcher, name: str = "hn_test_lora.safetensors", rank: int = 4,
               seed: int = 0, scale: float = 0.05) -> str:
    """A LoRA (kohya key names) on every attention's to_k and to_v of ``patcher``'s UNet."""
    import comfy.lora
    import safetensors.torch

    keys = comfy.lora.model_lora_keys_unet(patcher.model, {})
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for lora_key, model_key in sorted(keys.items()):
        if not (isinstance(lora_key, str) and lora_key.startswith("lora_unet_")
                and model_key.endswith((".to_k.weight", ".to_v.weight"))):
            continue
        out_features, in_features = patcher.model.state_dict()[model_key].shape
        state[f"{lora_key}.lora_down.weight"] = torch.randn(rank, in_features, generator=gen) * scale
        state[f"{lora_key}.lora_up.weight"] = torch.randn(out_features, rank, generator=gen) * scale
        state[f"{lora_key}.alpha"] = torch.tensor(float(rank))
    assert state, "no to_k / to_v LoRA keys found"
    Path(loras_dir).mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(state, str(Path(loras_dir) / name))
    return name


def with_lora(comfy_host, model, lora_name: str, strength: float = 1.0):
    """ComfyUI's own LoraLoaderModelOnly node."""
    (patched,) = s.run_node(comfy_host, "LoraLoaderModelOnly", model=model, lora_name=lora_name,
                            strength_model=strength)
    return patched


def linear_hypernetwork(comfy_host, hypernetwork_dir: Path, dims=TINY_DIMS, seed: int = 41):
    """A small linear hypernetwork: Apply folds it on the speed path."""
    return s.load_raw(comfy_host, hypernetwork_dir, f"lora_fold_{seed}.pt",
                      make_raw_a1111_dict(dims=dims, activation="linear", std=0.02, seed=seed))


def variants(comfy_host, model, hypernetwork, lora_name: str) -> dict:
    """The models to compare: LoRA then hypernetwork, hypernetwork then LoRA, each folded and exact."""
    out = {}
    for speed_path in (True, False):
        tag = "folded" if speed_path else "exact"
        lora_first = s.apply_node(comfy_host, with_lora(comfy_host, model, lora_name), hypernetwork, 1.0, speed_path)
        hn_first = with_lora(comfy_host, s.apply_node(comfy_host, model, hypernetwork, 1.0, speed_path), lora_name)
        assert s.is_folded(lora_first) == speed_path and s.is_folded(hn_first) == speed_path
        out[f"lora+hn {tag}"] = lora_first
        out[f"hn+lora {tag}"] = hn_first
    out["hn folded, no lora"] = s.apply_node(comfy_host, model, hypernetwork, 1.0, True)
    return out


def path_errors(outputs: dict) -> dict[str, float]:
    """Relative errors folded vs exact per order, and the LoRA's effect on the folded model."""
    errors = {order: s.rel_err(outputs[f"{order} folded"], outputs[f"{order} exact"]) for order in ("lora+hn", "hn+lora")}
    errors["lora effect"] = s.rel_err(outputs["lora+hn folded"], outputs["hn folded, no lora"])
    return errors


def paths_agree(errors: dict[str, float], tol: float = 1e-5) -> bool:
    """Folded equals exact in both orders, and the LoRA really acts on the folded model."""
    return errors["lora+hn"] <= tol and errors["hn+lora"] <= tol and errors["lora effect"] > 1e-3


def stand_ins(patcher) -> list:
    """The folded projections in the live UNet (only while ``patcher`` is patched in)."""
    return [m for m in patcher.model.diffusion_model.modules() if hasattr(m, "hn_records")]


@contextlib.contextmanager
def loaded_low_vram(patcher):
    """``patcher`` patched in with every castable layer in low-VRAM mode (LoRA as weight functions)."""
    patcher.patch_model(device_to=patcher.load_device, lowvram_model_memory=1)
    try:
        yield patcher
    finally:
        patcher.unpatch_model(device_to=patcher.offload_device)


def direct_eps(patcher, x, sigma: float, context) -> torch.Tensor:
    """One UNet evaluation of an already patched-in model (no load by the sampler), as eps."""
    device = patcher.load_device
    sigma_t = torch.full((x.shape[0],), float(sigma), device=device)
    options = {**patcher.model_options["transformer_options"], "sigmas": sigma_t,
               "sample_sigmas": torch.tensor([float(sigma), 0.0], device=device), "cond_or_uncond": [0]}
    with torch.inference_mode():
        denoised = patcher.model.apply_model(x.to(device), sigma_t, c_crossattn=context.to(device),
                                             transformer_options=options)
    return (x - denoised.float().cpu()) / sigma
