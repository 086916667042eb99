"""Where the main job keeps things, and the ComfyUI base directory it prepares.

The base directory is what ComfyUI gets as ``--base-directory``: models, custom nodes, input,
output, temp and user data all live there, so the ComfyUI tree itself is only ever read.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
PACK_NAME = "comfyui-hypernetworks"

DEFAULT_OUTPUT = REPO_ROOT / "out" / "main_job"
# Survives between runs and output folders: the generated default checkpoint, compiled bytecode.
DEFAULT_CACHE = REPO_ROOT / "out" / "cache"
DEFAULT_WORKFLOWS = REPO_ROOT / "workflows" / "api"


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


def prepare_base_dir(root: Path, pack_dir: Path = REPO_ROOT) -> BaseDir:
    """Create the folders ComfyUI needs and link this repository in as a custom node."""
    base = BaseDir(Path(root).resolve())
    for folder in (base.checkpoints, base.hypernetworks, base.output, base.custom_nodes, base.user):
        folder.mkdir(parents=True, exist_ok=True)
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
