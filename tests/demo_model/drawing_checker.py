"""Reading a picture of the shape world back: which colour is the shape, how noisy is the picture.

Independent of the model: it knows the world's palette (``tools.shape_world``) and nothing else.
"""
from __future__ import annotations

import numpy as np

from tools.shape_world import COLOURS

_PALETTE_NAMES = list(COLOURS)
_PALETTE = np.array([COLOURS[n] for n in _PALETTE_NAMES], dtype=np.float64)


def background_colour(rgb: np.ndarray) -> np.ndarray:
    """The median colour of the picture's border (shapes keep a margin from the edges)."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    return np.median(border.astype(np.float64), axis=0)


def shape_pixels(rgb: np.ndarray, threshold: float = 60.0) -> np.ndarray:
    """Pixels [N, 3] far from the background colour: the drawn shape."""
    background = background_colour(rgb)
    flat = rgb.astype(np.float64).reshape(-1, 3)
    return flat[np.linalg.norm(flat - background, axis=1) > threshold]


def dominant_shape_colour(rgb: np.ndarray) -> str | None:
    """The palette colour most of the shape's pixels are nearest to; None when no shape stands out."""
    pixels = shape_pixels(rgb)
    if len(pixels) < 12:  # under ~0.3 % of a 64x64 picture: nothing drawn
        return None
    nearest = np.argmin(((pixels[:, None, :] - _PALETTE[None]) ** 2).sum(-1), axis=1)
    return _PALETTE_NAMES[np.bincount(nearest, minlength=len(_PALETTE)).argmax()]


def high_frequency_energy(rgb: np.ndarray) -> float:
    """Share of the picture's spectral energy above half the Nyquist frequency (mean removed).

    A drawn picture (flat regions, a few edges) keeps almost all its energy at low frequencies;
    pixel noise spreads it evenly, so about three quarters lands above half Nyquist.
    """
    grey = rgb.astype(np.float64).mean(axis=2)
    spectrum = np.abs(np.fft.fft2(grey - grey.mean())) ** 2
    f = np.abs(np.fft.fftfreq(grey.shape[0]))  # cycles per pixel; Nyquist is 0.5
    fy, fx = np.meshgrid(f, np.abs(np.fft.fftfreq(grey.shape[1])), indexing="ij")
    high = np.maximum(fy, fx) > 0.25
    total = spectrum.sum()
    return float(spectrum[high].sum() / total) if total > 0 else 0.0

