"""A file's hashes, computed once per version of the file (hashing reads the whole file)."""
from __future__ import annotations

import logging
import os

from ...hn_core.formats.file_hash import FileHashes, hash_file
from .model_folders import FileVersionCache

logger = logging.getLogger(__name__)


def _hash_logged(path: str) -> FileHashes:
    hashes = hash_file(path)
    logger.debug("hashed %s: sha256 %s", path, hashes.sha256)
    return hashes


class FileHashCache(FileVersionCache):
    """Hashes per absolute path, reused while the file's (size, mtime_ns) stay the same."""

    def __init__(self):
        super().__init__(_hash_logged)

    def get(self, path: str) -> FileHashes:
        return super().get(os.path.abspath(path))


HASHES = FileHashCache()
