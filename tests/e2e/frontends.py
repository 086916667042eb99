"""The ComfyUI web frontends the UI workflows must load in.

* ``pinned``: the ``comfyui-frontend-package`` the host's ``requirements.txt`` pins and its venv
  holds (1.32.9 for ComfyUI 0.3.75, 1.49.6 for 0.33), served by ComfyUI as it is by default;
* ``newest``: the newest release on PyPI (1.58.x when written), installed beside the pinned one
  into ``<venv>/frontend-newest`` (``pip install --no-deps --target``, so the pinned package
  stays) and served with ComfyUI's ``--front-end-root``. ``HN_NEWEST_FRONTEND`` may name another
  such folder. Absent, the tests for it are skipped with the command that installs it.
"""
from __future__ import annotations

import importlib.metadata
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

NEWEST_ENV = "HN_NEWEST_FRONTEND"
PACKAGE = "comfyui-frontend-package"


@dataclass(frozen=True)
class Frontend:
    name: str  # "pinned" | "newest"
    version: str  # the package version the page must report
    static_dir: Path | None  # --front-end-root; None: the host's default


def pinned() -> Frontend:
    return Frontend("pinned", importlib.metadata.version(PACKAGE), None)


def newest_target() -> Path:
    return Path(os.environ.get(NEWEST_ENV) or Path(sys.prefix) / "frontend-newest")


def newest() -> Frontend | None:
    """The newest frontend installed under ``newest_target()``, or None."""
    target = newest_target()
    static = target / "comfyui_frontend_package" / "static"
    metadata = sorted(target.glob("comfyui_frontend_package-*.dist-info/METADATA"))
    if not static.is_dir() or not metadata:
        return None
    version = re.search(r"^Version: (\S+)$", metadata[-1].read_text(), re.MULTILINE).group(1)
    return Frontend("newest", version, static)


def install_hint() -> str:
    return (f"the newest frontend is not installed: {sys.executable} -m pip install --no-deps "
            f"--target {newest_target()} {PACKAGE}==<newest>")
