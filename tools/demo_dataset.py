"""The demo training set: eight pictures of the shape world in its held-out ``sepia`` style (CC0).

The demo model (``tools/train_demo_model.py``) never saw sepia pictures: a hypernetwork trained on
these eight teaches it the style. Captions describe the content only ("a red circle on a blue
background"), as a user's style set would, so the style lives in the network, not in a word.
The pictures use three shapes and four colours; the main job's sweep prompts ask for others too.

The shipped copy lives in ``datasets/hn_demo_dataset/`` and is what this script writes; a test
regenerates it and compares pixels, so the files and the recipe cannot drift apart.

Layout is what ComfyUI's "Load Image and Text Dataset from Folder" node
(``LoadImageTextDataSetFromFolder``, comfy_extras/nodes_dataset.py) reads: ``<name>.png`` with its
caption in ``<name>.txt`` beside it. That node only offers folders under ComfyUI's input directory,
and lists them with ``os.walk`` (which does not follow symlinks), so ``install_into`` copies the
folder there rather than linking it.

    python -m tools.demo_dataset [--out DIR]      # rewrite the images and captions
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from . import shape_world

log = logging.getLogger(__name__)

DATASET_NAME = "hn_demo_dataset"  # also the folder name the training workflow selects
DATASET_DIR = Path(__file__).resolve().parents[1] / "datasets" / DATASET_NAME
SIZE = shape_world.SIZE
STYLE = "sepia"
OTHER_STYLE = "blueprint"  # the held-out style the demo network is not trained on
SEED = 1888  # sepia-toned photographs date from the 1880s
COUNT = 8
DATASET_SHAPES = ("circle", "square", "star")
DATASET_COLOURS = ("red", "blue", "green", "yellow")


def dataset_scenes() -> list[shape_world.Scene]:
    """The eight scenes, flat style (the dataset draws them in ``STYLE``): eight different
    (colour, shape) pairs, each on a background the base model was trained with that differs
    from the shape in brightness."""
    rng = np.random.RandomState(SEED)
    pairs = [(c, s) for c in DATASET_COLOURS for s in DATASET_SHAPES]
    scenes = []
    for pair in (pairs[i] for i in rng.permutation(len(pairs))[:COUNT]):
        # Sepia keeps only brightness: a shape must differ from its background in brightness to show.
        backgrounds = [c for c in shape_world.TRAINING_COMBINATIONS if c[:2] == pair and _contrast(*c) > 60]
        scenes.append(shape_world.random_scene(rng, backgrounds[rng.randint(len(backgrounds))], "flat"))
    return scenes


def _contrast(colour: str, _shape: str, background: str) -> float:
    return abs(float(shape_world.luminance(shape_world.COLOURS[colour])
                     - shape_world.luminance(shape_world.BACKGROUNDS[background])))


def style_pictures(style: str = STYLE) -> list[np.ndarray]:
    """The dataset's scenes drawn in ``style`` (uint8 HxWx3): the reference a style score compares with."""
    return [shape_world.render(dataclasses.replace(scene, style=style)) for scene in dataset_scenes()]


README = f"""# {DATASET_NAME}

{COUNT} procedural {SIZE}x{SIZE} pictures of the shape world in its held-out `{STYLE}` style, with
captions (`<name>.txt` beside `<name>.png`): the training set of `workflows/train_hypernetwork.json`.
The demo model never saw this style; a hypernetwork trained on these pictures teaches it.

Made by the comfyui-hypernetworks project with `python -m tools.demo_dataset` (shapes drawn by
code, `tools/shape_world.py`; no photographs or third-party material). Dedicated to the public
domain under CC0 1.0: https://creativecommons.org/publicdomain/zero/1.0/

ComfyUI's "Load Image and Text Dataset from Folder" node lists folders under ComfyUI's `input/`
directory: copy (do not symlink) this folder to `input/{DATASET_NAME}`.
"""


def write_dataset(folder: Path = DATASET_DIR) -> list[Path]:
    """Write every image, its caption and the README into ``folder``; return the image paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("*.png"), *folder.glob("*.txt")]:
        old.unlink()
    images = []
    for index, (scene, pixels) in enumerate(zip(dataset_scenes(), style_pictures()), 1):
        stem = f"{index:02d}_{scene.colour}_{scene.shape}"
        path = folder / f"{stem}.png"
        Image.fromarray(pixels).save(path, optimize=False, compress_level=9)  # fixed settings: same bytes
        (folder / f"{stem}.txt").write_text(scene.caption + "\n", encoding="utf-8")
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
