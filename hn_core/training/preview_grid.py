"""Lay out preview pictures as one grid image: a row per prompt, a column per training step.

Pictures use ComfyUI's IMAGE layout, ``[batch, height, width, channels]`` with values in 0..1,
so the grid goes straight to a Save Image or Preview Image node.
"""
from __future__ import annotations

from typing import Sequence

import torch

GAP = 2  # pixels of white between cells, so neighbouring pictures stay apart


def preview_grid(columns: Sequence[torch.Tensor], gap: int = GAP) -> torch.Tensor:
    """``[1, H', W', C]`` float image from columns of ``[rows, H, W, C]`` pictures (uint8 or float).

    Column j holds step j's pictures, one per prompt, in prompt order; every column must have
    the same shape. uint8 pictures are scaled to 0..1.
    """
    if not columns:
        raise ValueError("no preview columns to lay out")
    shape = tuple(columns[0].shape)
    if len(shape) != 4 or any(tuple(column.shape) != shape for column in columns):
        raise ValueError(f"preview columns must all be [rows, H, W, C] of one shape, got "
                         f"{[tuple(column.shape) for column in columns]}")
    rows, height, width, channels = shape
    count = len(columns)
    grid = torch.ones(1, rows * height + (rows - 1) * gap, count * width + (count - 1) * gap, channels)
    for j, column in enumerate(columns):
        cells = _as_float(column)
        for i in range(rows):
            top, left = i * (height + gap), j * (width + gap)
            grid[0, top:top + height, left:left + width] = cells[i]
    return grid


def _as_float(pictures: torch.Tensor) -> torch.Tensor:
    if pictures.dtype == torch.uint8:
        return pictures.float() / 255.0
    return pictures.float().cpu()
