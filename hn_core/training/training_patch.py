"""The attn1/attn2 patch used while training: the trainable network at strength 1.

A1111 ignores the multiplier while training, so there is no strength and no per-block profile
here; the math is the network's own `transform`, the same call inference makes, or, for a linear
network, the same map multiplied out (see folded_pair) where that is cheaper.

Every cross-attention layer receives the same text context object, and the k/v MLPs of one dim
give the same result for it everywhere. `share_context` runs them once per model call (before
the UNet, so gradient checkpointing recomputes nothing different) and each layer reuses the
result: the gradients still reach the network through every layer that uses it.
"""
from __future__ import annotations

import torch

from ..network import Hypernetwork
from .folded_pair import apply_pair_map, is_affine, residual_pair_map, worth_folding


class TrainingPatch:
    def __init__(self, network: Hypernetwork):
        self.network: Hypernetwork | None = network
        self._affine = is_affine(network)
        self._shared: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        # dim -> the folded map of its pair for this model call; rebuilt every call, since the
        # optimizer changes the weights between calls and each backward frees the last graph.
        self._pair_maps: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def share_context(self, context: object) -> None:
        """Start a model call: compute the network's output for its text context once (or forget it)."""
        self._shared = None
        self._pair_maps = {}
        if isinstance(context, torch.Tensor) and self.network.has_dim(context.shape[-1]):
            k, v = self._transform(context, context)
            self._shared = (context, k, v)

    def release(self) -> None:
        """Let go of the network once training is over. The host may move or drop this patch
        long after (when it unloads or collects the training clone); by then the network is the
        trained one in use elsewhere, and must stay where its new owners put it."""
        self._shared = None
        self._pair_maps = {}
        self.network = None

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict):
        shared = self._shared
        if shared is not None and k is shared[0] and v is shared[0]:
            return q, shared[1], shared[2]
        if not self.network.has_dim(k.shape[-1]):
            return q, k, v
        k, v = self._transform(k, v)
        return q, k, v

    def _transform(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dim = k.shape[-1]
        pair_map = self._pair_maps.get(dim)
        # Where the host left the network elsewhere than the activations, transform moves it.
        if (pair_map is None and self._affine and worth_folding(k.numel() // dim, dim)
                and next(self.network.parameters()).device == k.device):
            pair_map = self._pair_maps[dim] = residual_pair_map(self.network, dim)
        if pair_map is None:
            return self.network.transform(k, v, 1.0)
        return apply_pair_map(pair_map, k, v)

    def to(self, device_or_dtype):
        # The network holds fp32 master weights: ComfyUI's to(model dtype) must not cast them.
        if self.network is not None and not isinstance(device_or_dtype, torch.dtype):
            self.network.to(device_or_dtype)
        return self

    def models(self) -> list:
        return []
