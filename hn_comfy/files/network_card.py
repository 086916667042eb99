"""What Load Hypernetwork tells about a file beyond its weights: hashes and A1111's sidecars.

Like a card in A1111's extra-networks tab: the file's hashes (hn_core.formats.file_hash), the user
metadata, description and preview beside it (hn_core.formats.a1111_sidecar).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ...hn_core.formats.a1111_sidecar import UserMetadata, find_preview, read_user_metadata, sidecar_candidates
from ...hn_core.formats.file_hash import FileHashes
from .file_hashes import HASHES
from .model_folders import file_signature


@dataclass(frozen=True)
class NetworkCard:
    path: str
    size: int
    hashes: FileHashes
    metadata: UserMetadata
    preview_path: str | None


def read_card(path: str) -> NetworkCard:
    return NetworkCard(path=path, size=os.path.getsize(path), hashes=HASHES.get(path),
                       metadata=read_user_metadata(path), preview_path=find_preview(path))


def card_signature(path: str) -> tuple:
    """Changes when the file or any sidecar A1111 would read beside it appears, changes or goes."""
    found = [(os.path.basename(p), file_signature(p)) for p in sidecar_candidates(path) if os.path.isfile(p)]
    return (file_signature(path), tuple(found))


def card_text(card: NetworkCard) -> str:
    meta = card.metadata
    lines = [f"warning: {warning}" for warning in meta.warnings]
    lines += [
        f"file: {os.path.basename(card.path)} ({card.size:,} bytes)",
        f"sha256: {card.hashes.sha256}",
        f"A1111 short hash (Civitai AutoV2): {card.hashes.short}",
        f"A1111 legacy hash (Civitai AutoV1, old infotext 'Hypernet hash'): {card.hashes.legacy}",
    ]
    if meta.preferred_weight:
        lines.append(f"preferred weight: {meta.preferred_weight:g}")
    else:
        lines.append(f"preferred weight: not set (strength {meta.strength:g})")
    for label, value in (("activation text", meta.activation_text), ("negative text", meta.negative_text),
                         ("sd version", meta.sd_version), ("description", meta.description),
                         ("notes", meta.notes)):
        if value:
            lines.append(f"{label}: {value}")
    sources = [p for p in (meta.metadata_path, meta.description_path, card.preview_path) if p]
    if sources:
        lines.append("sidecars: " + ", ".join(dict.fromkeys(os.path.basename(p) for p in sources)))
    return "\n".join(lines)
