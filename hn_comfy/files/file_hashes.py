"""A file's hashes, computed once per version of the file (hashing reads the whole file)."""
from __future__ import annotations

import logging
import os
import threading

from ...hn_core.formats.file_hash import FileHashes, hash_file
from .model_folders import file_signature

logger = logging.getLogger(__name__)


class FileHashCache:
    """Hashes per path, reused while the file's (size, mtime_ns) stay the same."""

    def __init__(self):
        self._entries: dict[str, tuple[tuple[int, int], FileHashes]] = {}
        self._lock = threading.Lock()
        self.computed = 0  # how many files were hashed: the tests count the work saved

    def get(self, path: str) -> FileHashes:
        path = os.path.abspath(path)
        signature = file_signature(path)
        with self._lock:
            entry = self._entries.get(path)
            if entry is not None and entry[0] == signature:
                return entry[1]
        hashes = hash_file(path)
        with self._lock:
            self.computed += 1
            # A file rewritten while it was read is hashed again next time.
            if file_signature(path) == signature:
                self._entries[path] = (signature, hashes)
        logger.debug("hashed %s: sha256 %s", path, hashes.sha256)
        return hashes


HASHES = FileHashCache()
