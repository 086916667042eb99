"""Benchmark: one TrainHypernetwork step against the floor of any training through the UNet.

Ours: one optimizer step of hn_core's TrainingRun through the node's own ComfyUI wiring (the
frozen clone with the training patch, ComfyUI's apply_model), with a hypernetwork on every SD1.5
dim (320, 640, 768, 1280) in one of the structures A1111 users train (`--structure`, see
STRUCTURES; default A1111's 1,2,1 linear). Floor: the same UNet's forward plus
a backward to its input latent, all weights frozen, no hypernetwork. SD1.5 shapes with random
weights (built under inference mode, as a loader builds them), batch 1, 32x32 latent; the weights
in `--dtype` (auto: fp32 on CPU, fp16 on CUDA), computed in that dtype. `--kind sdxl`: SDXL base
shapes (dims 640, 1280, 2048, pooled and size conditioning). Both run in one process, taking turns;
medians of several runs and the peak memory of each, without and with gradient checkpointing.
`--json FILE` writes the medians and ratios as JSON (scripts/gpu_check.py reads it).

Usage: .venv/bin/python benchmarks/bench_train.py [--repeats 5] [--size 32] [--kind sd15|sdxl|tiny_sd1]
       [--structure linear|relu-ln|swish-ln-dropout] [--dtype auto|fp32|fp16|bf16] [--json FILE]
"""
from __future__ import annotations

import argparse
import ctypes
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (DTYPES, interleaved_medians, logger, model_dtype, paired_ratio,  # noqa: E402
                               start_host_for_benchmark)

# --structure: HypernetworkConfig fields of the [1, 2, 1] structures A1111 guides recommend.
STRUCTURES = {
    "linear": {},
    "relu-ln": {"activation_func": "relu", "is_layer_norm": True},
    "swish-ln-dropout": {"activation_func": "swish", "is_layer_norm": True, "use_dropout": True,
                         "dropout_structure": (0, 0.3, 0)},
}
TARGETS = {False: 1.25, True: 1.10}  # ours / floor, without and with gradient checkpointing (issue #10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=32, help="latent height and width")
    parser.add_argument("--kind", default="sd15", choices=("sd15", "sdxl", "tiny_sd1"))
    parser.add_argument("--dims", default="auto")
    parser.add_argument("--structure", default="linear", choices=tuple(STRUCTURES),
                        help="the hypernetwork's [1, 2, 1] structure: activation, layer norm, dropout")
    parser.add_argument("--dtype", default="auto", choices=DTYPES)
    parser.add_argument("--json", help="write the results to this file as JSON")
    options = parser.parse_args()
    host, models = start_host_for_benchmark()
    import torch
    session = host.pack_module("hn_comfy.training.session")
    model_call = host.pack_module("hn_comfy.training.model_call")
    training = host.pack_module("hn_core.training")
    hn_core = host.pack_module("hn_core")
    attention = host.pack_module("hn_comfy.apply.model_attention")

    dtype = model_dtype(options.dtype, torch.cuda.is_available())
    with torch.inference_mode():  # weights as a loader node leaves them: inference tensors
        model = getattr(models, options.kind)(seed=0, dtype=dtype)
    widths = attention.attention_key_widths(model)
    dims = training.parse_dims(options.dims, widths["attn1"] | widths["attn2"])
    generator = torch.Generator().manual_seed(0)
    latent = torch.randn(1, 4, options.size, options.size, generator=generator)
    context = torch.randn(1, 77, max(widths["attn2"]), generator=generator)
    adm = getattr(model.model, "adm_channels", 0)
    # SDXL: pooled text for its vector conditioning (ComfyUI adds the size embeddings).
    cond_extra = {"pooled_output": torch.randn(1, 1280, generator=generator)} if adm else {}
    config = hn_core.HypernetworkConfig(**STRUCTURES[options.structure])
    logger.info("model %s, hypernetwork dims %s [1,2,1] %s, latent 1x4x%dx%d, device %s, %d threads",
                options.kind, list(dims), options.structure, options.size, options.size, model.load_device,
                torch.get_num_threads())

    with torch.inference_mode(False):
        results = {}
        for checkpointing in (False, True):
            network = hn_core.Hypernetwork.create(dims, config, seed=0)
            with session.training_clone(model, network, "auto", checkpointing) as (patcher, patch):
                steps = _step_functions(patcher, patch, network, latent, context, cond_extra, model_call, training)
                with training.TrainingRun(network, steps["data"], training.TrainingSettings(
                        max_steps=10**9, learning_rate="1e-5")) as run:
                    candidates = {"ours": run.step, "floor": steps["floor"]}
                    timings = interleaved_medians(candidates, options.repeats)
                    memory = {name: _peak_memory(fn, patcher.load_device) for name, fn in candidates.items()}
            results[checkpointing] = (timings, memory)
            del network, steps, run, candidates

    ratios = {checkpointing: {"ratio_to_floor": timings["ours"][0] / timings["floor"][0],
                              "paired_ratio_to_floor": paired_ratio(timings, "ours", "floor")}
              for checkpointing, (timings, _memory) in results.items()}
    for checkpointing, (timings, memory) in results.items():
        label = "with" if checkpointing else "without"
        logger.info("--- %s gradient checkpointing", label)
        for name in ("floor", "ours"):
            median, runs = timings[name]
            logger.info("%-5s median %.3f s  peak +%.0f MiB  (runs: %s)", name, median, memory[name] / 2**20,
                        ", ".join(f"{t:.3f}" for t in runs))
        logger.info("ratio ours/floor = %.3f (target <= %.2f); median of the rounds' ratios %.3f; "
                    "memory ratio %.2f",
                    ratios[checkpointing]["ratio_to_floor"], TARGETS[checkpointing],
                    ratios[checkpointing]["paired_ratio_to_floor"], memory["ours"] / max(memory["floor"], 1))
    if options.json:
        Path(options.json).write_text(json.dumps({
            "benchmark": "train", "shape": options.kind, "structure": options.structure,
            "dtype": str(dtype).replace("torch.", ""),
            "device": str(model.load_device), "size": options.size, "dims": list(dims),
            "runs": {("checkpointing" if checkpointing else "plain"): {
                "median_s": {name: timings[name][0] for name in timings},
                **ratios[checkpointing],
                "peak_bytes": memory} for checkpointing, (timings, memory) in results.items()},
        }, indent=1))


def _step_functions(patcher, patch, network, latent, context, cond_extra, model_call, training):
    """TrainingData for our step, and the floor step, on the same loaded model."""
    import torch

    device = patcher.load_device
    model_sampling = patcher.get_model_object("model_sampling")
    clean = [patcher.model.process_latent_in(latent.to(device))[0].float()]
    data = training.TrainingData(
        latents=clean, sigmas=model_call.discrete_sigmas(model_sampling),
        noise_scaling=lambda sigma, noise, x: model_sampling.noise_scaling(sigma, noise, x),
        predict=model_call.ModelCall(patcher, patch, clean, [[context.clone(), dict(cond_extra)]]),
        target=model_call.prediction_target(model_sampling))
    sigma = torch.tensor([float(model_sampling.sigmas[500])], device=device)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(1)).to(device)
    cross_attention = context.to(device)
    adm = getattr(patcher.model, "adm_channels", 0)
    vector = {"y": torch.zeros(1, adm, device=device)} if adm else {}

    def floor():
        x = (clean[0][None] + sigma.view(-1, 1, 1, 1) * noise).requires_grad_(True)
        out = patcher.model.apply_model(x, sigma, c_crossattn=cross_attention, transformer_options={}, **vector)
        torch.nn.functional.mse_loss(out.float(), clean[0][None]).backward()
        assert x.grad is not None

    return {"data": data, "floor": floor}


def _peak_memory(fn, device) -> int:
    """Bytes allocated on top of what was in use before `fn` ran: the allocator's statistics on
    CUDA; on the CPU, glibc's count of bytes in use (heap + mmapped), sampled every millisecond."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    base = _heap_in_use()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _heap_in_use())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    return max(peak[0], _heap_in_use()) - base


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _heap_in_use() -> int:
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd  # small blocks in use + mmapped (large) blocks


if __name__ == "__main__":
    main()
