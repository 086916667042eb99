"""Shared helpers for benchmark scripts: timing medians and importing the ComfyUI host."""
from __future__ import annotations

import logging
import os
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

logger = logging.getLogger("benchmarks")
DTYPES = ("auto", "fp32", "fp16", "bf16")  # --dtype choices


def model_dtype(name: str, cuda: bool):
    """The torch dtype for a --dtype choice (auto: fp16 on CUDA, fp32 on the CPU)."""
    import torch

    if name == "auto":
        return torch.float16 if cuda else torch.float32
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def interleaved_medians(candidates: dict, repeats: int, warmup: int = 1) -> dict[str, tuple[float, list[float]]]:
    """Time each callable `repeats` times, taking turns, so machine noise hits all of them alike.

    Returns name -> (median seconds, all runs).
    """
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(runs), runs) for name, runs in times.items()}


def paired_ratio(timings: dict, numerator: str, denominator: str) -> float:
    """Median over rounds of numerator/denominator, each round's two runs side by side.

    On a noisy machine a slow spell hits both runs of a round, so these ratios scatter less than
    the ratio of the two medians does (which pairs runs from different moments).
    """
    rounds = zip(timings[numerator][1], timings[denominator][1])
    return statistics.median(a / b for a, b in rounds)


def import_comfy_host():
    """Put the ComfyUI host (COMFYUI_PATH or .host/ComfyUI) first on sys.path and import it for CPU use."""
    root = os.environ.get("COMFYUI_PATH") or str(REPO_ROOT / ".host" / "ComfyUI")
    if not Path(root, "main.py").is_file():
        raise SystemExit(f"no ComfyUI at {root}: run scripts/provision_host.sh first")
    sys.path.insert(0, root)
    import torch
    from comfy.cli_args import args
    if not torch.cuda.is_available():
        args.cpu = True
    return root


def start_host_for_benchmark():
    """Start the pack's ComfyUI host for a benchmark and quiet everything but the benchmark's own log.

    Our tests package is imported before ComfyUI's root (which has a tests/ of its own) goes on sys.path.
    Returns the host and the tests.host.models module (the model builders).
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from tests.host import comfy_host, models

    import_comfy_host()
    host = comfy_host.start()
    logging.getLogger().setLevel(logging.WARNING)
    logger.setLevel(logging.INFO)
    return host, models
