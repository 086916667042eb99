"""Which training steps get preview pictures, and what their files are called.

Previews are drawn every `every` steps and after the last step, beside the snapshots' step
numbers; the base model's picture (the network at strength 0) is drawn once, before training.
Files: ``hn_previews/<name>/<name>-<step>-<index>.png`` under ComfyUI's output directory, with
``base`` for the step of the base model's pictures and `index` the prompt's position (from 0).
"""
from __future__ import annotations

import posixpath

PREVIEW_FOLDER = "hn_previews"
BASE_LABEL = "base"


def is_preview_step(step: int, every: int, last_step: int) -> bool:
    """True when the weights after `step` steps get previews (`every` 0 = never)."""
    return every > 0 and (step % every == 0 or step == last_step)


def preview_subfolder(name: str) -> str:
    """The folder of `name`'s previews, relative to the output directory (``/``-separated, as
    ComfyUI's image references spell subfolders)."""
    return posixpath.join(PREVIEW_FOLDER, name)


def preview_file_name(name: str, step: int | str, index: int) -> str:
    """``<name>-<step>-<index>.png``; `step` is a step count or BASE_LABEL."""
    return f"{name}-{step}-{index}.png"
