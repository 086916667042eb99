"""Gradient checkpointing for a frozen model we do not own: patched in, always patched out.

Each top-level layer (descending through ModuleList / Sequential / ModuleDict containers, as
ComfyUI's own trainer does) recomputes its activations during the backward pass instead of
keeping them: about one extra forward pass of time for a large cut in activation memory.

Each checkpointed call gets a `CheckpointRegion`, current while the layer runs forward and again
while it is recomputed, so that code inside (the training patch) can hand results of the
original forward to the recomputation instead of computing them twice (see `current_region`).
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import torch
import torch.utils.checkpoint

_CONTAINERS = (torch.nn.ModuleList, torch.nn.Sequential, torch.nn.ModuleDict)


def top_level_layers(root: torch.nn.Module) -> list[torch.nn.Module]:
    layers = []
    for child in root.children():
        if isinstance(child, _CONTAINERS):
            layers.extend(top_level_layers(child))
        else:
            layers.append(child)
    return layers


@contextlib.contextmanager
def gradient_checkpointing(root: torch.nn.Module, enabled: bool = True) -> Iterator[None]:
    """Checkpoint every top-level layer of `root` inside the block; the layers are restored after,
    even when training fails."""
    if not enabled:
        yield
        return
    patched = []
    try:
        for layer in top_level_layers(root):
            had_own_forward = "forward" in layer.__dict__
            patched.append((layer, had_own_forward, layer.__dict__.get("forward")))
            layer.forward = _checkpointed(layer.forward)
        yield
    finally:
        for layer, had_own_forward, own_forward in reversed(patched):
            if had_own_forward:
                layer.forward = own_forward
            else:
                del layer.__dict__["forward"]


class CheckpointRegion:
    """One checkpointed call of a layer: what its forward kept for its recomputation, in call order.

    The recomputation runs the layer's Python code again, so it asks in the same order;
    `recomputing` tells the two passes apart."""

    def __init__(self):
        self.recomputing = False
        self._kept: list = []
        self._next = 0

    def keep(self, value) -> None:
        self._kept.append(value)

    def take(self):
        """The next kept value, or None when the recomputation asks for more than was kept. Each
        is handed out once and then dropped (a region is recomputed once per backward)."""
        if self._next >= len(self._kept):
            return None
        value, self._kept[self._next] = self._kept[self._next], None
        self._next += 1
        return value


_current = threading.local()  # the recomputation runs on the autograd engine's thread for its device


def current_region() -> CheckpointRegion | None:
    """The checkpointed call running now on this thread (None outside gradient checkpointing)."""
    return getattr(_current, "region", None)


@contextlib.contextmanager
def _in_region(region: CheckpointRegion, recomputing: bool) -> Iterator[None]:
    outer = current_region()
    region.recomputing = recomputing
    _current.region = region
    try:
        yield
    finally:
        _current.region = outer


def _region_contexts():
    region = CheckpointRegion()
    return _in_region(region, False), _in_region(region, True)


def _checkpointed(forward):
    def run(*args, **kwargs):
        return torch.utils.checkpoint.checkpoint(forward, *args, use_reentrant=False, context_fn=_region_contexts,
                                                 **kwargs)
    return run
