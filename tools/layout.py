"""Where the main job keeps things. The ComfyUI base directory it prepares is the batch runner's
(``batch_runner.base_dir``)."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_OUTPUT = REPO_ROOT / "out" / "main_job"
# Survives between runs and output folders: the generated default checkpoint, compiled bytecode.
DEFAULT_CACHE = REPO_ROOT / "out" / "cache"
DEFAULT_WORKFLOWS = REPO_ROOT / "workflows" / "api"
