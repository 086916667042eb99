"""Factor a weight change into LoRA's up @ down, at full rank or truncated by SVD."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LowRank:
    up: torch.Tensor  # [out, rank]
    down: torch.Tensor  # [rank, in]
    relative_error: float  # ||delta - up @ down||_F / ||delta||_F before storage rounding (0 at full rank)

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])


def full_rank(delta: torch.Tensor) -> int:
    return min(int(delta.shape[0]), int(delta.shape[1]))


def factorize(delta: torch.Tensor, rank: int = 0) -> LowRank:
    """``up @ down`` equal to ``delta`` (rank 0 or the full rank), or its best rank-``rank`` approximation.

    Full rank needs no SVD: the identity on the smaller side carries ``delta`` itself, exactly. A
    truncated rank keeps the largest singular values (Eckart-Young: the smallest error possible)
    and reports the relative Frobenius error left, from the singular values dropped.
    """
    delta = delta.to(torch.float64)
    full = full_rank(delta)
    if rank < 0 or rank > full:
        raise ValueError(f"rank {rank} is outside 0..{full} for a {tuple(delta.shape)} weight")
    if rank in (0, full):
        if delta.shape[0] <= delta.shape[1]:
            return LowRank(torch.eye(full, dtype=delta.dtype), delta.clone(), 0.0)
        return LowRank(delta.clone(), torch.eye(full, dtype=delta.dtype), 0.0)
    u, s, vh = torch.linalg.svd(delta, full_matrices=False)
    root = s[:rank].sqrt()
    total = float(s.square().sum())
    error = (float(s[rank:].square().sum()) / total) ** 0.5 if total > 0 else 0.0
    return LowRank(u[:, :rank] * root, root[:, None] * vh[:rank], error)
