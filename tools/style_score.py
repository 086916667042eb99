"""How far pictures are from a style, measured from the pixels alone.

Each set of pictures is summarised by the distribution of its pixel colours: their mean and
covariance in an opponent colour space (brightness, red-green, yellow-blue), which is where the
shape world's styles differ (sepia: brown to cream, no other hue; blueprint: navy and light blue).
The distance between two sets is the Frechet distance between those two Gaussians, the measure
FID uses for image features, here on colours:

    d^2 = |m1 - m2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2))

0 means the same colour statistics; it grows smoothly as a picture's colours move away, so a
strength sweep shows as a sequence of distances. Pixel values are taken in [0, 1].
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# Rows: brightness, red - green, yellow - blue (each of unit gain on [0, 1] RGB).
_OPPONENT = np.array([[1 / 3, 1 / 3, 1 / 3], [0.5, -0.5, 0.0], [0.25, 0.25, -0.5]])


def load_rgb(path: Path | str) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def _unit_rgb(picture) -> np.ndarray:
    if isinstance(picture, (str, Path)):
        return load_rgb(picture)
    array = np.asarray(picture)
    return array / 255.0 if np.issubdtype(array.dtype, np.integer) else array.astype(np.float64)


def colour_statistics(pictures) -> tuple[np.ndarray, np.ndarray]:
    """Mean [3] and covariance [3, 3] of every pixel of ``pictures``: paths, uint8 arrays HxWx3, or
    float arrays HxWx3 in [0, 1]."""
    pixels = np.concatenate([_unit_rgb(p).reshape(-1, 3) for p in pictures])
    opponent = pixels @ _OPPONENT.T
    return opponent.mean(axis=0), np.cov(opponent, rowvar=False)


def _sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    (m1, c1), (m2, c2) = a, b
    root1 = _sqrtm_psd(c1)
    cross = _sqrtm_psd(root1 @ c2 @ root1)  # tr((C1 C2)^1/2) = tr((C1^1/2 C2 C1^1/2)^1/2), symmetric form
    d2 = float(np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * np.trace(cross))
    return float(np.sqrt(max(d2, 0.0)))


def style_distance(pictures, style_pictures) -> float:
    """Distance of ``pictures`` from the style of ``style_pictures`` (0 = the same colour statistics)."""
    return frechet_distance(colour_statistics(pictures), colour_statistics(style_pictures))
