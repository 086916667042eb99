"""Finding hypernetwork files in ComfyUI's model folders, and loading each one once."""
from __future__ import annotations

import logging
import os
import threading

import folder_paths

from ...hn_core import SUPPORTED_SUFFIXES, Hypernetwork, HypernetworkError, load_hypernetwork

logger = logging.getLogger(__name__)

FOLDER = "hypernetworks"


def list_hypernetwork_files() -> list[str]:
    return [name for name in folder_paths.get_filename_list(FOLDER) if name.lower().endswith(SUPPORTED_SUFFIXES)]


def list_builtin_loader_names() -> list[str]:
    """Exactly what ComfyUI's own HypernetworkLoader offers (every model suffix), so a value saved
    for it is valid for a drop-in replacement; files we cannot read fail with a clear error."""
    return folder_paths.get_filename_list(FOLDER)


def resolve_path(name: str) -> str:
    path = folder_paths.get_full_path(FOLDER, name)
    if path is None or not os.path.isfile(path):
        raise HypernetworkError(name, f"file not found in the '{FOLDER}' model folders "
                                      f"({', '.join(folder_paths.get_folder_paths(FOLDER))})")
    return path


def file_signature(path: str) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size


class FileVersionCache:
    """One value per path, computed by `compute(path)` and reused while the file's (mtime, size) stay."""

    def __init__(self, compute):
        self._compute = compute
        self._entries: dict[str, tuple[tuple[int, int], object]] = {}
        self._lock = threading.Lock()
        self.computed = 0  # how many times `compute` ran: the tests count the work saved

    def get(self, path: str):
        signature = file_signature(path)
        with self._lock:
            entry = self._entries.get(path)
            if entry is not None and entry[0] == signature:
                return entry[1]
        value = self._compute(path)
        with self._lock:
            self.computed += 1
            if file_signature(path) == signature:  # a file rewritten while read is computed again next time
                self._entries[path] = (signature, value)
        return value

    def path_of(self, value) -> str | None:
        """The path this exact value was computed for, while it is still the cached one."""
        with self._lock:
            return next((path for path, (_signature, cached) in self._entries.items() if cached is value), None)


def _load_logged(path: str) -> Hypernetwork:
    network = load_hypernetwork(path)
    logger.info("loaded hypernetwork %s (%d parameters)", path, network.parameter_count())
    return network


LOADED = FileVersionCache(_load_logged)
