"""What each optimizer step sees (items, timesteps, noise, dropout), from its step number alone.

Every random choice of step `s` comes from generators seeded with (seed, s), never from state
carried over from step s-1. So training 10 steps, saving, loading and training 10 more sees
exactly what 20 straight steps see: resuming needs no RNG state in the files.
"""
from __future__ import annotations

import contextlib
import hashlib
from typing import Iterator

import torch


def derived_seed(seed: int, stream: str, index: int) -> int:
    """A 63-bit seed for one (stream, index), independent of every other pair."""
    digest = hashlib.sha256(f"{int(seed)}:{stream}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def step_generator(seed: int, step: int, stream: str) -> torch.Generator:
    """A CPU generator for one step (CPU, so results do not depend on the training device)."""
    return torch.Generator().manual_seed(derived_seed(seed, stream, step))


def micro_batches(seed: int, step: int, item_count: int, batch_size: int, accumulation: int) -> list[list[int]]:
    """Item indices of each micro-batch of the optimizer step that starts with `step` steps done.

    Items are drawn as one endless stream of epochs; each epoch visits every item once, in an
    order seeded by (seed, epoch), like a shuffling data loader that never drops a sample.
    """
    if item_count < 1:
        raise ValueError("no training items")
    per_step = batch_size * accumulation
    first = step * per_step
    orders: dict[int, list[int]] = {}
    flat = []
    for position in range(first, first + per_step):
        epoch, offset = divmod(position, item_count)
        if epoch not in orders:
            generator = torch.Generator().manual_seed(derived_seed(seed, "epoch", epoch))
            orders[epoch] = torch.randperm(item_count, generator=generator).tolist()
        flat.append(orders[epoch][offset])
    return [flat[i:i + batch_size] for i in range(0, per_step, batch_size)]


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG (which Dropout uses) for one step and restore it afterwards."""
    cuda_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.default_generator.manual_seed(seed)
        if cuda_devices:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield
