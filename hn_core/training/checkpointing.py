"""Gradient checkpointing for a frozen model we do not own: patched in, always patched out.

Each top-level layer (descending through ModuleList / Sequential / ModuleDict containers, as
ComfyUI's own trainer does) recomputes its activations during the backward pass instead of
keeping them: about one extra forward pass of time for a large cut in activation memory.
"""
from __future__ import annotations

import contextlib
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


def _checkpointed(forward):
    def run(*args, **kwargs):
        return torch.utils.checkpoint.checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return run
