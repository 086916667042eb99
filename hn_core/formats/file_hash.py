"""The hashes A1111 and Civitai know a model file by, computed from the file streamed in chunks.

- ``sha256``: of the whole file; Civitai lists it as "SHA256".
- ``short``: its first 10 hex digits. A1111 1.x (``modules/hashes.py``) calls it the shorthash:
  its extra-networks cards and metadata editor show it for a hypernetwork, its `.optim` sidecar
  stores it as ``hash``; Civitai calls it "AutoV2".
- ``legacy``: A1111's first "model hash" (``sd_models.model_hash``, 2022): the first 8 hex digits of
  the sha256 of only the 64 KiB at offset 1 MiB. Old infotexts carry it as ``Hypernet hash``;
  Civitai calls it "AutoV1". Every file under 1 MiB gets the same one (the sha256 of nothing).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

CHUNK_BYTES = 1 << 20
SHORT_HASH_LENGTH = 10
LEGACY_OFFSET = 0x100000
LEGACY_LENGTH = 0x10000
LEGACY_HASH_LENGTH = 8


@dataclass(frozen=True)
class FileHashes:
    sha256: str
    legacy: str

    @property
    def short(self) -> str:
        return self.sha256[:SHORT_HASH_LENGTH]


def sha256_of_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def short_hash_of_file(path: str | os.PathLike) -> str:
    """A1111's short hash: what its cards show and its `.optim` sidecar holds."""
    return sha256_of_file(path)[:SHORT_HASH_LENGTH]


def legacy_hash_of_file(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        f.seek(LEGACY_OFFSET)
        window = f.read(LEGACY_LENGTH)
    return hashlib.sha256(window).hexdigest()[:LEGACY_HASH_LENGTH]


def hash_file(path: str | os.PathLike) -> FileHashes:
    return FileHashes(sha256=sha256_of_file(path), legacy=legacy_hash_of_file(path))
