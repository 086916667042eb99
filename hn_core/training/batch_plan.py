"""What each optimizer step sees (items, timesteps, noise, dropout), from its step number alone.

Every random choice of step `s` comes from generators seeded with (seed, s), never from state
carried over from step s-1. So training 10 steps, saving, loading and training 10 more sees
exactly what 20 straight steps see: resuming needs no RNG state in the files.
"""
from __future__ import annotations

import contextlib
import hashlib
from typing import Hashable, Iterator, Sequence

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


def bucketed_micro_batches(seed: int, step: int, bucket_keys: Sequence[Hashable], batch_size: int,
                           accumulation: int) -> list[list[int]]:
    """Like `micro_batches`, but a micro-batch only ever holds items of one bucket (one latent size).

    `bucket_keys` gives each item's bucket (e.g. its latent shape). With a single bucket this is
    exactly `micro_batches`. With several, every epoch cuts each bucket's items, in an order seeded
    by (seed, epoch, bucket), into batches of `batch_size` (a bucket's last batch may be smaller),
    and plays all the epoch's batches in an order seeded by (seed, epoch): every item is still seen
    once per epoch, and a step's batches still follow from (seed, step) alone.
    """
    buckets: dict[Hashable, list[int]] = {}
    for index, key in enumerate(bucket_keys):
        buckets.setdefault(key, []).append(index)
    if len(buckets) <= 1:
        return micro_batches(seed, step, len(bucket_keys), batch_size, accumulation)
    members = [buckets[key] for key in sorted(buckets, key=repr)]  # repr: a fixed order for any key type
    per_epoch = sum(-(-len(items) // batch_size) for items in members)
    first = step * accumulation
    epochs: dict[int, list[list[int]]] = {}
    plan = []
    for position in range(first, first + accumulation):
        epoch, offset = divmod(position, per_epoch)
        if epoch not in epochs:
            epochs[epoch] = _bucketed_epoch(seed, epoch, members, batch_size)
        plan.append(epochs[epoch][offset])
    return plan


def _bucketed_epoch(seed: int, epoch: int, members: list[list[int]], batch_size: int) -> list[list[int]]:
    batches = []
    for bucket, items in enumerate(members):
        generator = torch.Generator().manual_seed(derived_seed(seed, f"bucket-{bucket}", epoch))
        order = [items[i] for i in torch.randperm(len(items), generator=generator).tolist()]
        batches.extend(order[i:i + batch_size] for i in range(0, len(order), batch_size))
    generator = torch.Generator().manual_seed(derived_seed(seed, "bucket-batches", epoch))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


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
