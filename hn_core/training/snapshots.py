"""Snapshots during training: ``<name>-<step>.pt`` plus its ``.optim`` sidecar, as A1111 writes them.

Each file is written atomically and is complete on its own: it loads anywhere and resumes
training with its optimizer state.
"""
from __future__ import annotations

import logging
import os

from ..network.hypernetwork import Hypernetwork
from .resume import OptimizerState, save_with_optimizer_state

logger = logging.getLogger(__name__)


def snapshot_file_name(name: str, step: int) -> str:
    return f"{name}-{step}.pt"


def write_snapshot(network: Hypernetwork, state: OptimizerState, directory, name: str) -> str:
    """Save `network` as ``<directory>/<name>-<step>.pt`` with its sidecar; returns the path."""
    path = os.path.join(os.fspath(directory), snapshot_file_name(name, network.info.step))
    if os.path.exists(path):
        logger.warning("replacing the earlier snapshot %s", path)
    save_with_optimizer_state(network, path, state)
    return path
