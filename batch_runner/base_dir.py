"""The ComfyUI base directory (``--base-directory``) a server of ours runs in.

Models, custom nodes, input, output, temp and user data all live there, so the ComfyUI tree
itself is only ever read. This pack is linked into ``custom_nodes/``.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PACK_DIR = Path(__file__).resolve().parents[1]  # batch_runner/ sits at the pack's top level
PACK_NAME = "comfyui-hypernetworks"


@dataclass(frozen=True)
class BaseDir:
    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "models" / "checkpoints"

    @property
    def hypernetworks(self) -> Path:
        return self.root / "models" / "hypernetworks"

    @property
    def input(self) -> Path:
        return self.root / "input"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def custom_nodes(self) -> Path:
        return self.root / "custom_nodes"

    @property
    def user(self) -> Path:
        return self.root / "user"

    @property
    def database_url(self) -> str:
        # ComfyUI's default database lives inside its own tree; keep it in the base directory.
        return f"sqlite:///{self.user / 'comfyui.db'}"


def prepare_base_dir(root: Path, pack_dir: Path = PACK_DIR, input_dir: Path | None = None) -> BaseDir:
    """Create the folders ComfyUI needs and link this pack in as a custom node.

    ``input_dir``: a folder to serve as ComfyUI's input directory (linked, not copied).
    """
    base = BaseDir(Path(root).resolve())
    for folder in (base.checkpoints, base.hypernetworks, base.output, base.custom_nodes, base.user):
        folder.mkdir(parents=True, exist_ok=True)
    if input_dir is not None:
        link_into(base.input, Path(input_dir))
    else:
        base.input.mkdir(exist_ok=True)
    link_into(base.custom_nodes / PACK_NAME, pack_dir)
    return base


def link_into(link: Path, target: Path) -> None:
    """Make ``link`` a symlink to ``target``, replacing a stale link (never a real file or folder)."""
    target = Path(target).resolve()
    if link.is_symlink():
        if Path(os.readlink(link)) == target:
            return
        link.unlink()
    elif link.exists():
        raise RuntimeError(f"{link} exists and is not a symlink; refusing to replace it")
    link.symlink_to(target, target_is_directory=target.is_dir())
    log.debug("linked %s -> %s", link, target)
