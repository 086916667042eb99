"""The attn1/attn2 patch used while training: the trainable network at strength 1.

A1111 ignores the multiplier while training, so there is no strength and no per-block profile
here; the math is the network's own `transform`, the same call inference makes, or, for a linear
network, the same map multiplied out (see folded_pair) where that is cheaper.

Every cross-attention layer receives the same text context object, and the k/v MLPs of one dim
give the same result for it everywhere. `share_context` runs them once per model call (before
the UNet, so gradient checkpointing recomputes nothing different) and each layer reuses the
result: the gradients still reach the network through every layer that uses it. With dropout,
only the part before the first dropout is shared (see shared_context).

Under gradient checkpointing the network runs once, in the layer's forward, and keeps its own
activations (they are small beside the UNet's); the layer's recomputation during the backward
gets the forward's k', v' back instead of running the network again. The network's backward
then needs nothing recomputed, dropout draws its masks once, and a seed gives the same result
with and without checkpointing.
"""
from __future__ import annotations

import logging

import torch

from ..network.hypernetwork import Hypernetwork
from .checkpointing import current_region
from .folded_pair import apply_pair_map, is_affine, residual_pair_map, worth_folding
from .shared_context import SharedContext

logger = logging.getLogger(__name__)


class TrainingPatch:
    def __init__(self, network: Hypernetwork):
        self.network: Hypernetwork | None = network
        self._affine = is_affine(network)
        self._shared: SharedContext | None = None
        # dim -> the folded map of its pair for this model call; rebuilt every call, since the
        # optimizer changes the weights between calls and each backward frees the last graph.
        self._pair_maps: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def share_context(self, context: object) -> None:
        """Start a model call: compute the network's output for its text context once (or forget it)."""
        self._shared = None
        self._pair_maps = {}
        if isinstance(context, torch.Tensor) and self.network.has_dim(context.shape[-1]):
            self._shared = SharedContext(self.network, context, self._transform)

    def release(self) -> None:
        """Let go of the network once training is over. The host may move or drop this patch
        long after (when it unloads or collects the training clone); by then the network is the
        trained one in use elsewhere, and must stay where its new owners put it."""
        self._shared = None
        self._pair_maps = {}
        self.network = None

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict):
        if not self.network.has_dim(k.shape[-1]):
            return q, k, v
        region = current_region()
        if region is None:
            return q, *self._rewrite(k, v)
        if region.recomputing:
            return q, *self._kept_result(region, k, v)
        # Inside a checkpointed layer: keep the network's activations (identity hooks take
        # precedence over checkpointing's), and the result for the recomputation. Every call
        # keeps one, so the recomputation, asking in the same order, finds its own.
        with torch.autograd.graph.saved_tensors_hooks(_same, _same):
            new_k, new_v = self._rewrite(k, v)
        # Kept without their graph: the recomputation needs values only, and the graph leads
        # back to checkpointing's state, which holds the region (no reference cycle).
        region.keep((new_k.detach(), new_v.detach()))
        return q, new_k, new_v

    def _rewrite(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shared = self._shared
        if shared is not None and shared.matches(k, v):
            return shared.result()
        return self._transform(k, v)

    def _kept_result(self, region, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kept = region.take()
        if kept is None or kept[0].shape != k.shape or kept[1].shape != v.shape:
            # Not expected: the layer's recomputation took another path. Values are all it needs.
            logger.warning("gradient checkpointing: recomputing the hypernetwork for a layer whose forward "
                           "result was not kept")
            with torch.no_grad():
                kept = self._rewrite(k, v)
        # As in the forward, the layer's next ops see inputs that need gradients, so they save
        # the same tensors (checkpointing checks that), though this pass's graph is never used.
        return kept[0].requires_grad_(), kept[1].requires_grad_()

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


def _same(tensor: torch.Tensor) -> torch.Tensor:
    return tensor
