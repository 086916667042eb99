"""The demo training set: a few small procedural images with captions, made by this project (CC0).

The shipped copy lives in ``datasets/hn_demo_dataset/`` and is what this script writes; a test
regenerates it and compares bytes, so the files and the recipe cannot drift apart.

Layout is what ComfyUI's "Load Image and Text Dataset from Folder" node
(``LoadImageTextDataSetFromFolder``, comfy_extras/nodes_dataset.py) reads: ``<name>.png`` with its
caption in ``<name>.txt`` beside it. That node only offers folders under ComfyUI's input directory,
and lists them with ``os.walk`` (which does not follow symlinks), so ``install_into`` copies the
folder there rather than linking it.

    python -m tools.demo_dataset [--out DIR]      # rewrite the images and captions
"""
from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

DATASET_NAME = "hn_demo_dataset"  # also the folder name the training workflow selects
DATASET_DIR = Path(__file__).resolve().parents[1] / "datasets" / DATASET_NAME
SIZE = 64
TRIGGER = "hndemo style"  # a word the captions share, as in A1111-style training sets


def _grid() -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in [-1, 1] (y down, x right)."""
    axis = (np.arange(SIZE) + 0.5) / SIZE * 2 - 1
    return np.meshgrid(axis, axis, indexing="ij")


def _blend(a, b, t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)[..., None]
    return np.asarray(a, float) * (1 - t) + np.asarray(b, float) * t


def _image(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), "RGB")


def concentric_rings() -> Image.Image:
    y, x = _grid()
    rings = 0.5 + 0.5 * np.cos(np.hypot(x, y) * 6 * np.pi)
    return _image(_blend((250, 200, 60), (200, 40, 30), rings))


def diagonal_stripes() -> Image.Image:
    y, x = _grid()
    stripes = (np.floor((x + y) * 4) % 2).astype(float)
    return _image(_blend((235, 240, 250), (30, 70, 170), stripes))


def checkerboard() -> Image.Image:
    y, x = _grid()
    cells = (np.floor((x + 1) * 4) + np.floor((y + 1) * 4)) % 2
    shade = _blend((20, 110, 120), (120, 220, 200), (x + 1) / 2)
    return _image(shade * (0.55 + 0.45 * cells[..., None]))


def sunset() -> Image.Image:
    y, x = _grid()
    sky = _blend((255, 150, 60), (70, 30, 110), (-y + 0.2) / 1.2)
    sun = np.hypot(x, y + 0.05) < 0.35
    sky[sun] = (255, 230, 120)
    sky[y > 0.3] = _blend((30, 40, 90), (10, 10, 30), (y - 0.3) / 0.7)[y > 0.3]
    return _image(sky)


def waves() -> Image.Image:
    y, x = _grid()
    crest = np.sin(x * 3 * np.pi + np.sin(y * 2 * np.pi) * 1.5)
    return _image(_blend((60, 20, 90), (220, 150, 240), 0.5 + 0.5 * crest))


def polka_dots() -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), (250, 235, 215))
    draw = ImageDraw.Draw(image)
    colours = [(220, 60, 90), (40, 150, 90), (40, 90, 200), (240, 170, 20)]
    step = SIZE // 4
    for row in range(4):
        for col in range(4):
            cx, cy = col * step + step // 2 + (row % 2) * 4 - 2, row * step + step // 2
            r = 3 + (row + col) % 3 * 2
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colours[(row * 4 + col) % len(colours)])
    return image


# file stem -> (drawing, caption)
IMAGES = {
    "01_rings": (concentric_rings, "concentric rings, orange and red, radial pattern"),
    "02_stripes": (diagonal_stripes, "diagonal stripes, navy blue and white"),
    "03_checkers": (checkerboard, "checkerboard, teal gradient, geometric"),
    "04_sunset": (sunset, "sun over a dark sea, orange and purple sky"),
    "05_waves": (waves, "flowing waves, purple and lilac"),
    "06_dots": (polka_dots, "polka dots on cream, red, green, blue and yellow"),
}

README = f"""# {DATASET_NAME}

{len(IMAGES)} procedural {SIZE}x{SIZE} images with captions (`<name>.txt` beside `<name>.png`), the
training set of `workflows/train_hypernetwork.json`.

Made by the comfyui-hypernetworks project with `python -m tools.demo_dataset` (shapes, gradients
and patterns drawn by code; no photographs or third-party material). Dedicated to the public
domain under CC0 1.0: https://creativecommons.org/publicdomain/zero/1.0/

ComfyUI's "Load Image and Text Dataset from Folder" node lists folders under ComfyUI's `input/`
directory: copy (do not symlink) this folder to `input/{DATASET_NAME}`.
"""


def write_dataset(folder: Path = DATASET_DIR) -> list[Path]:
    """Write every image, its caption and the README into ``folder``; return the image paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for stem, (draw, caption) in IMAGES.items():
        path = folder / f"{stem}.png"
        draw().save(path, optimize=False, compress_level=9)  # fixed settings: the same bytes every run
        (folder / f"{stem}.txt").write_text(f"{TRIGGER}, {caption}\n", encoding="utf-8")
        images.append(path)
    (folder / "README.md").write_text(README, encoding="utf-8")
    return images


def install_into(input_dir: Path, source: Path = DATASET_DIR) -> Path:
    """Copy the dataset to ``<input_dir>/<DATASET_NAME>`` (replacing an older copy); return it."""
    target = Path(input_dir) / DATASET_NAME
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    log.info("demo dataset copied to %s", target)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DATASET_DIR, help=f"folder to write (default: {DATASET_DIR})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for path in write_dataset(args.out):
        log.info("wrote %s (%d bytes)", path, path.stat().st_size)


if __name__ == "__main__":
    main()
