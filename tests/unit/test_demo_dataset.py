"""The shipped demo dataset is exactly what tools/demo_dataset.py draws, captioned the way
ComfyUI's dataset loader reads, in the held-out style, and says who made it and under which licence."""
from __future__ import annotations

import numpy as np
from PIL import Image

from tools import demo_dataset, shape_world


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_shipped_files_match_the_recipe(tmp_path):
    fresh = demo_dataset.write_dataset(tmp_path)
    shipped = sorted(demo_dataset.DATASET_DIR.glob("*.png"))
    assert [p.name for p in shipped] == [p.name for p in fresh]
    for new in fresh:
        old = demo_dataset.DATASET_DIR / new.name
        # Pixels, not bytes: another zlib may compress the same image differently.
        assert np.array_equal(pixels(old), pixels(new)), f"{old} differs from the recipe: rerun the script"
        assert old.with_suffix(".txt").read_text() == new.with_suffix(".txt").read_text()
    assert (demo_dataset.DATASET_DIR / "README.md").read_text() == (tmp_path / "README.md").read_text()


def test_eight_captioned_pictures_of_the_held_out_style():
    images = sorted(demo_dataset.DATASET_DIR.glob("*.png"))
    assert len(images) == demo_dataset.COUNT == 8
    scenes = demo_dataset.dataset_scenes()
    assert len({(s.colour, s.shape) for s in scenes}) == 8  # eight different shape-colour pairs
    assert demo_dataset.STYLE in shape_world.HELD_OUT_STYLES  # the base model never saw it
    for path, scene in zip(images, scenes):
        array = pixels(path)
        assert array.shape == (demo_dataset.SIZE, demo_dataset.SIZE, 3)
        assert path.stat().st_size < 16_000
        # The caption says what is drawn, in the words the base model knows; not the style.
        assert path.with_suffix(".txt").read_text().strip() == scene.caption
        assert array.std() > 10, f"{path.name}: the shape hardly shows"


def test_licence_is_stated():
    readme = (demo_dataset.DATASET_DIR / "README.md").read_text()
    assert "CC0" in readme and "comfyui-hypernetworks project" in readme


def test_install_copies_a_real_folder(tmp_path):
    target = demo_dataset.install_into(tmp_path / "input")
    again = demo_dataset.install_into(tmp_path / "input")  # a second run replaces the copy
    assert target == again == tmp_path / "input" / demo_dataset.DATASET_NAME
    assert target.is_dir() and not target.is_symlink()  # ComfyUI's folder list skips symlinks
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in demo_dataset.DATASET_DIR.iterdir())
