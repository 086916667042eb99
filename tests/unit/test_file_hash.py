"""A file's hashes as A1111 and Civitai name them, checked against hashlib on real files."""
from __future__ import annotations

import hashlib
import random

import pytest

from hn_core.formats import file_hash


def _write(tmp_path, name: str, size: int, seed: int) -> tuple:
    data = random.Random(seed).randbytes(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize("size", [0, 1, file_hash.CHUNK_BYTES - 1, file_hash.CHUNK_BYTES,
                                  2 * file_hash.CHUNK_BYTES + 12345])
def test_sha256_streams_the_whole_file(tmp_path, size):
    path, data = _write(tmp_path, "net.pt", size, seed=size)
    hashes = file_hash.hash_file(path)
    assert hashes.sha256 == hashlib.sha256(data).hexdigest()
    assert hashes.short == hashlib.sha256(data).hexdigest()[:10] and len(hashes.short) == 10


def test_legacy_hash_reads_only_64_kib_at_one_mib(tmp_path):
    path, data = _write(tmp_path, "big.pt", 3 << 20, seed=7)
    assert file_hash.legacy_hash_of_file(path) == hashlib.sha256(data[1 << 20:(1 << 20) + (64 << 10)]).hexdigest()[:8]
    # A change outside that window leaves it as it was (why A1111 replaced it), the sha256 not.
    changed = bytearray(data)
    changed[0] ^= 0xFF
    changed[-1] ^= 0xFF
    other = tmp_path / "changed.pt"
    other.write_bytes(bytes(changed))
    assert file_hash.legacy_hash_of_file(other) == file_hash.legacy_hash_of_file(path)
    assert file_hash.sha256_of_file(other) != file_hash.sha256_of_file(path)


def test_every_file_under_one_mib_has_the_same_legacy_hash(tmp_path):
    small = [_write(tmp_path, f"small{i}.pt", size, seed=i)[0] for i, size in enumerate((10, 5000, (1 << 20) - 1))]
    empty_window = hashlib.sha256(b"").hexdigest()[:8]
    assert {file_hash.legacy_hash_of_file(p) for p in small} == {empty_window}
    assert len({file_hash.sha256_of_file(p) for p in small}) == 3


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        file_hash.hash_file(tmp_path / "absent.pt")
