"""A pause in training for drawing previews with the network as it stands.

Inside, the network is in eval mode (dropout off) and autograd is off; afterwards it is back in
its mode and torch's global RNG (CPU, and the training GPU's; ComfyUI's samplers draw from it)
is exactly as it was. The optimizer is never touched, so a run with pauses trains bit-identically
to one without, provided the code run inside does not change the weights.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from ..network.hypernetwork import Hypernetwork


@contextlib.contextmanager
def paused_for_preview(network: Hypernetwork, device: torch.device) -> Iterator[None]:
    was_training = network.training
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
        network.eval()
        try:
            yield
        finally:
            network.train(was_training)
