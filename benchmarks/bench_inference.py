"""Benchmark: one UNet step with no hypernetwork, with ComfyUI's built-in loader, and with ours.

SD1.5 shapes (random weights; `--shape sdxl`: SDXL base), batch 2, 64x64 latent, in the model's
dtype (`--dtype`; auto: fp32 on CPU, fp16 on CUDA).
Cases: [1, 2, 1] linear files on all the family's dims (SD1 320/640/768/1280, SDXL 640/1280/2048),
one per weight std in `--linear-stds` (default 0.01 weak, as trained files are, and 0.05 strong: an
RMS gain of s*A about 2.7 at dim 768; the log prints each file's gain), and [1, 2, 1] relu + layer
norm. Every linear file is folded by Apply (the speed path); relu + LN runs the exact path.
Each round loads one variant (untimed), warms it up once, then times one step; rounds
alternate over variants so machine noise hits all alike. Prints medians and ratios to plain
(and the minimum, the least disturbed run on a shared machine).

A second section times the hypernetwork work alone: the attn1/attn2 patches of the built-in
loader and of ours called on exactly the key/value inputs one step of this UNet gives them
(recorded once), many rounds. It has far less noise than whole steps, and says what the
UNet-level ratios cannot resolve on a busy machine.
`--json FILE` writes the medians and ratios as one JSON object (scripts/gpu_check.py reads it).
Usage: .venv/bin/python benchmarks/bench_inference.py [--rounds 5] [--size 64] [--batch 2] [--patch-rounds 15]
       [--shape sd15|sdxl] [--dtype auto|fp32|fp16|bf16] [--linear-stds 0.01,0.05] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.host import comfy_host, models  # noqa: E402  (our tests package, before ComfyUI's)
from benchmarks.common import DTYPES, model_dtype  # noqa: E402

logger = logging.getLogger("benchmarks")
# Model builder, hypernetwork dims, text-context width, SDXL's extra vector (adm) width.
SHAPES = {
    "sd15": ("sd15", (320, 640, 768, 1280), 768, 0),
    "sdxl": ("sdxl", (640, 1280, 2048), 2048, 2816),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=64, help="latent height and width")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--patch-rounds", type=int, default=15)
    parser.add_argument("--shape", default="sd15", choices=sorted(SHAPES))
    parser.add_argument("--dtype", default="auto", choices=DTYPES)
    parser.add_argument("--linear-stds", default="0.01,0.05",
                        help="comma-separated weight stds of the linear files (weak and strong)")
    parser.add_argument("--json", help="write the results to this file as JSON")
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    host = comfy_host.start()
    import torch
    import comfy.model_management as mm
    from comfy_extras.nodes_hypernetwork import load_hypernetwork_patch
    hn = host.pack_module("hn_core")
    folding = host.pack_module("hn_core.inference.folding")
    from tests.reference.a1111_reference import make_raw_a1111_dict
    apply_node = host.node_class("ApplyHypernetwork")()

    cuda = torch.cuda.is_available()
    dtype = model_dtype(options.dtype, cuda)
    builder, dims, context_dim, adm = SHAPES[options.shape]
    plain = getattr(models, builder)(dtype=dtype)
    device = mm.get_torch_device()
    x = torch.randn(options.batch, 4, options.size, options.size, device=device)
    context = torch.randn(options.batch, 77, context_dim, device=device)
    sigma = torch.full((options.batch,), 5.0, device=device)
    extra = {"y": torch.randn(options.batch, adm, device=device)} if adm else {}

    variants = {"plain": plain}
    cases = {f"linear std {std}": ("raw", float(std)) for std in options.linear_stds.split(",")}
    cases["relu+LN"] = ("config", hn.HypernetworkConfig(activation_func="relu", is_layer_norm=True))
    with tempfile.TemporaryDirectory() as tmp:
        for index, (case, (kind, spec)) in enumerate(cases.items()):
            path = str(Path(tmp) / f"case{index}.pt")
            if kind == "raw":  # an A1111 file as a user has it, weights of std `spec`
                torch.save(make_raw_a1111_dict(dims=dims, activation="linear", std=spec, seed=index), path)
            else:
                hn.save_hypernetwork(hn.Hypernetwork.create(dims, spec, seed=0), path)
            builtin = plain.clone()
            patch = load_hypernetwork_patch(path, 1.0)
            builtin.set_model_attn1_patch(patch)
            builtin.set_model_attn2_patch(patch)
            variants[f"{case}: builtin"] = builtin
            network = hn.load_hypernetwork(path)
            ours = apply_node.apply(plain, network, 1.0)[0]
            folded = sum(hasattr(p, "hn_records") for p in ours.object_patches.values())
            logger.info("%s: ours %s%s", case, f"folded into {folded} projections" if folded else "on the exact path",
                        _gain_note(network, folding))
            variants[f"{case}: ours"] = ours

        def one_step(patcher):
            with torch.inference_mode():
                patcher.model.apply_model(x, sigma, c_crossattn=context,
                                          transformer_options=patcher.model_options["transformer_options"], **extra)
            if cuda:
                torch.cuda.synchronize()

        times = {name: [] for name in variants}
        for _ in range(options.rounds):
            for name, patcher in variants.items():
                mm.load_models_gpu([patcher])
                one_step(patcher)  # warm-up: caches, allocator
                start = time.perf_counter()
                one_step(patcher)
                times[name].append(time.perf_counter() - start)

        patch_times = _time_patches_alone(variants, one_step, options.patch_rounds)

    logger.info("%s shapes, batch %d, %dx%d latent, %s, %s; %d rounds", options.shape, options.batch, options.size,
                options.size, device, str(dtype).replace("torch.", ""), options.rounds)
    _report(times, list(cases))
    logger.info("Hypernetwork work alone in one step (attn1 + attn2 patches on recorded inputs), %d rounds:",
                options.patch_rounds)
    for name, runs in patch_times.items():
        logger.info("%-26s median %.3f s  min %.3f s", name, statistics.median(runs), min(runs))
    if options.json:
        base = statistics.median(times["plain"])
        Path(options.json).write_text(json.dumps({
            "benchmark": "apply", "shape": options.shape, "dtype": str(dtype).replace("torch.", ""),
            "device": str(device), "batch": options.batch, "size": options.size,
            "median_s": {name: statistics.median(runs) for name, runs in times.items()},
            "ratio_to_plain": {name: statistics.median(runs) / base for name, runs in times.items()},
        }, indent=1))


def _gain_note(network, folding) -> str:
    # How strongly a linear file changes its input: RMS singular value of A, the largest over dims.
    if not folding.is_foldable(network):
        return ""
    gain = max(float(folding.affine_form(module)[0].norm()) / dim ** 0.5
               for dim in network.dims for module in network.pair(dim))
    return f" (RMS gain of A up to {gain:.2f})"


def _report(times: dict, cases: list) -> None:
    base = statistics.median(times["plain"])
    base_min = min(times["plain"])
    for name, runs in times.items():
        median = statistics.median(runs)
        logger.info("%-26s median %.3f s  ratio to plain %.3f  (min-based %.3f; runs: %s)", name, median,
                    median / base, min(runs) / base_min, ", ".join(f"{t:.3f}" for t in runs))
    for case in cases:
        ours = statistics.median(times[f"{case}: ours"]) / base - 1
        builtin = statistics.median(times[f"{case}: builtin"]) / base - 1
        logger.info("%s: overhead ours %+.1f%%, builtin %+.1f%% (medians)", case, 100 * ours, 100 * builtin)


def _time_patches_alone(variants: dict, one_step, rounds: int) -> dict:
    """Record the (k, v, extra_options) every attention patch receives in one step, then replay
    them through each variant's patches alone."""
    import torch

    recorded = {"attn1": [], "attn2": []}

    def recorder(kind):
        def patch(q, k, v, extra_options):
            recorded[kind].append((k.clone(), v if v is k else v.clone(), dict(extra_options)))
            return q, k, v
        return patch

    probe = variants["plain"].clone()
    probe.set_model_attn1_patch(recorder("attn1"))
    probe.set_model_attn2_patch(recorder("attn2"))
    one_step(probe)
    calls = {}
    for name, patcher in variants.items():
        patches = patcher.model_options["transformer_options"].get("patches", {})
        found = [(p, kind) for kind in ("attn1", "attn2") for p in patches.get(f"{kind}_patch", [])]
        if found:  # plain and folded variants have no patch to time
            calls[name] = found

    def replay(name):
        with torch.inference_mode():
            # A sampler builds its context tensors anew at every step: so does the replay.
            for kind, records in recorded.items():
                for k, v, extra in records:
                    key = k.clone() if kind == "attn2" else k
                    for patch, patch_kind in calls[name]:
                        if patch_kind == kind:
                            patch(None, key, key if v is k else v, extra)

    times = {name: [] for name in calls}
    for name in calls:
        replay(name)
    for _ in range(rounds):
        for name in calls:
            start = time.perf_counter()
            replay(name)
            times[name].append(time.perf_counter() - start)
    return times


if __name__ == "__main__":
    main()
