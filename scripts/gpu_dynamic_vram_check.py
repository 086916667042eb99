"""DynamicVRAM check (CUDA, ComfyUI >= 0.33): a LoRA plus a folded hypernetwork through ModelPatcherDynamic.

With DynamicVRAM (on by default on NVIDIA since ComfyUI 0.33) weights stream from RAM through a
per-module `_v` slot and a LoRA reaches to_k / to_v as `weight_lowvram_function`, never as the
module's `weight`. The speed path's stand-in projection must ask ComfyUI for the weight there and
keep no fused copy on the GPU. This script enables DynamicVRAM in-process the way ComfyUI's
main.py does (comfy-aimdo), builds the tiny SD1-like UNet, wraps it in ModelPatcherDynamic, adds a
LoRA with ComfyUI's LoraLoaderModelOnly, and compares the folded model with the exact path (both
orders), recording which route each stand-in took. The comparison itself is shared with the CPU
tests (tests/inference/lora_folding.py).

Prints one JSON line; exit 0 when the paths agree, 1 when not, 3 when it cannot run here (no CUDA,
no ModelPatcherDynamic, comfy-aimdo missing or not working): the reason is in the JSON.
Usage: COMFYUI_PATH=/path/to/ComfyUI python3 scripts/gpu_dynamic_vram_check.py [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.host import comfy_host  # noqa: E402  (our tests package, before ComfyUI's root)

logger = logging.getLogger("gpu_dynamic_vram_check")
CANNOT_RUN = 3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    result = run()
    line = json.dumps(result, sort_keys=True)
    print(line, flush=True)  # the script's result, for gpu_check.py
    if options.json:
        options.json.write_text(line + "\n")
    if result["status"] == "ok":
        return 0
    return 1 if result["status"] == "failed" else CANNOT_RUN


def run() -> dict:
    import torch

    result = {"check": "dynamic_vram_lora_fold", "comfyui": str(comfy_host.comfyui_root())}
    if not torch.cuda.is_available():
        return {**result, "status": "skipped", "reason": "no CUDA device"}
    reason = _enable_dynamic_vram()
    if reason:
        return {**result, "status": "skipped", "reason": reason}
    return {**result, **_compare()}


def _enable_dynamic_vram() -> str | None:
    """What ComfyUI's main.py does to turn DynamicVRAM on; returns why not, or None."""
    sys.path.insert(0, str(comfy_host.comfyui_root()))
    try:
        import comfy_aimdo.control
    except ImportError as error:
        return f"comfy-aimdo is not installed ({error})"
    from comfy.cli_args import args, enables_dynamic_vram

    if not enables_dynamic_vram():
        return "DynamicVRAM is off by this ComfyUI's defaults"
    _call_newest(comfy_aimdo.control.init, dict(simple_vram_headroom=None, nvml_pressure=True),
                 dict(simple_vram_headroom=None), {})
    comfy_host.start()  # its base directory is a fresh temp folder
    import comfy.memory_management
    import comfy.model_management as mm
    import comfy.model_patcher

    if not hasattr(comfy.model_patcher, "ModelPatcherDynamic"):
        return "this ComfyUI has no ModelPatcherDynamic (before 0.33)"
    devices = [(d.index, int(args.vram_headroom * 1024 ** 3)) for d in mm.get_all_torch_devices()]
    if not _call_newest(comfy_aimdo.control.init_devices, devices, [index for index, _ in devices]):
        return "comfy-aimdo could not initialise the CUDA device"
    comfy.model_patcher.CoreModelPatcher = comfy.model_patcher.ModelPatcherDynamic
    return None


def _call_newest(function, *argument_forms):
    # comfy-aimdo changed its signatures between releases; main.py tries the newest first, so do we.
    for form in argument_forms:
        try:
            return function(**form) if isinstance(form, dict) else function(form)
        except TypeError:
            continue
    raise TypeError(f"no known signature of {function!r} accepted the arguments")


def _compare() -> dict:
    import torch
    import comfy.memory_management
    import comfy.model_patcher

    from tests.host import models
    from tests.inference import lora_folding as lf

    host = comfy_host.start()
    plain = models.tiny_sd1(dtype=torch.float32)  # fp32: compare at 1e-5, dtype aside
    comfy.memory_management.aimdo_enabled = True  # as main.py leaves it (after the model is built)
    dynamic = comfy.model_patcher.ModelPatcherDynamic(plain.model, plain.load_device, plain.offload_device)
    if not dynamic.is_dynamic():
        return {"status": "skipped", "reason": "ModelPatcherDynamic fell back to the plain patcher"}
    hypernetwork_dir = host.model_dir("hypernetworks")
    lora = lf.write_lora(host.model_dir("loras"), dynamic)
    hypernetwork = lf.linear_hypernetwork(host, hypernetwork_dir)
    x, context = models.seeded_inputs(dynamic, batch=1, seed=40)

    routes: dict[str, dict[str, int]] = {}
    outputs = {}
    for name, patcher in lf.variants(host, dynamic, hypernetwork, lora).items():
        seen = routes.setdefault(name, {"calls": 0, "streamed": 0, "lora_function": 0})
        hooks = [m.register_forward_pre_hook(_route_recorder(seen))
                 for m in patcher.object_patches.values() if hasattr(m, "hn_records")]
        try:
            denoised = models.unet_forward(patcher, x, lf.SIGMA, context)
        finally:
            for hook in hooks:
                hook.remove()
        outputs[name] = (x - denoised) / lf.SIGMA
        left_on_gpu = sum(m.hn_fused_cached for m in patcher.object_patches.values())
        seen["fused_copies_kept"] = left_on_gpu
    errors = lf.path_errors(outputs)
    folded_with_lora = routes["lora+hn folded"]
    # Layers under 16 KiB are force-loaded (LoRA baked in, no `_v`); the larger ones must stream.
    took_dynamic_route = folded_with_lora["streamed"] > 0 and folded_with_lora["lora_function"] > 0
    ok = lf.paths_agree(errors) and took_dynamic_route and folded_with_lora["fused_copies_kept"] == 0
    return {"status": "ok" if ok else "failed", "errors": errors, "routes": routes,
            "dynamic_route_taken": took_dynamic_route}


def _route_recorder(seen: dict):
    def record(module, _inputs):
        seen["calls"] += 1
        seen["streamed"] += int(hasattr(module, "_v"))
        seen["lora_function"] += int(getattr(module, "weight_lowvram_function", None) is not None)
    return record


if __name__ == "__main__":
    sys.exit(main())
