"""Cross-attention keys and values computed once per prompt instead of once per layer and step.

Every cross-attention layer of one width receives the same text context, and a sampler feeds
the same prompts at every step, so the hypernetwork's output for that input changes only with
the prompt. The cache keeps a private copy of the last input, compared by value (a caller that
reuses or edits its tensor can never get a stale result), and the result computed from it.
Results are handed out shared: attention only reads its keys and values. With autograd on
(training through an applied hypernetwork) the cache is bypassed both ways.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class _Entry:
    key_input: torch.Tensor
    value_input: torch.Tensor | None  # None: values were the very tensor the keys were
    result: tuple[torch.Tensor, torch.Tensor]

    def matches(self, k: torch.Tensor, v: torch.Tensor) -> bool:
        if not _same_values(k, self.key_input):
            return False
        if v is k:
            return self.value_input is None
        return self.value_input is not None and _same_values(v, self.value_input)


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and torch.equal(a, b)


class ContextCache:
    """Remembers the last input and its transformed (k, v), per strength (a strength profile
    gives layers a few different strengths)."""

    MAX_STRENGTHS = 16

    def __init__(self):
        self._entries: dict[float, _Entry] = {}

    def get(self, k: torch.Tensor, v: torch.Tensor, strength: float,
            compute: Callable[[], tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.is_grad_enabled():
            # Never keep an autograd graph alive, and never hand autograd a result kept from
            # inference (an inference tensor cannot be saved for backward): the patch object, and
            # so this cache, may be shared by a clone that trains (ComfyUI >= 0.33 clones share patches).
            return compute()
        entry = self._entries.get(strength)
        if entry is not None and entry.matches(k, v):
            return entry.result
        result = compute()
        if strength not in self._entries and len(self._entries) >= self.MAX_STRENGTHS:
            self._entries.clear()
        self._entries[strength] = _Entry(k.clone(), None if v is k else v.clone(), result)
        return result
