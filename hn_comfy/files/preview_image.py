"""Show a network's preview picture on a node: a copy in ComfyUI's temp folder, as a UI image.

ComfyUI's frontend fetches UI images through ``/view`` from the output, input or temp folder only,
so the picture beside the model is copied into the temp folder (which ComfyUI empties at start),
the way PreviewImage returns ``{"filename", "subfolder", "type": "temp"}``.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil

import folder_paths

from ...hn_core.atomic_write import atomic_write
from .model_folders import file_signature

logger = logging.getLogger(__name__)

PREFIX = "hn_preview_"


def temp_copy_name(preview_path: str) -> str:
    """A name unique to this version of this file: a changed picture gets a new name (no stale cache)."""
    path = os.path.abspath(preview_path)
    version = hashlib.sha256(f"{path}|{file_signature(path)}".encode()).hexdigest()[:16]
    stem, ext = os.path.splitext(os.path.basename(path))
    safe_stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:60]
    return f"{PREFIX}{safe_stem}_{version}{ext.lower()}"


def preview_ui_image(preview_path: str) -> dict | None:
    """The UI image for ``preview_path``, or None (logged) when it cannot be copied."""
    try:
        name = temp_copy_name(preview_path)
        target = os.path.join(folder_paths.get_temp_directory(), name)
        if not os.path.isfile(target):
            with open(preview_path, "rb") as source:
                atomic_write(target, lambda f: shutil.copyfileobj(source, f))
    except OSError as exc:
        logger.warning("%s: preview not shown (%s)", preview_path, exc)
        return None
    return {"filename": name, "subfolder": "", "type": "temp"}
