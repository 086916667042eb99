"""What A1111 keeps beside a network file: user metadata, a description and a preview picture.

Facts from AUTOMATIC1111's webui 1.x (``modules/extra_networks.py`` get_user_metadata,
``modules/ui_extra_networks.py`` find_preview / find_description, the metadata editors in
``modules/ui_extra_networks_user_metadata.py`` and ``extensions-builtin/Lora/ui_edit_user_metadata.py``):

- ``<stem>.json`` holds a JSON object. The generic editor, the one A1111's Hypernetworks tab uses,
  writes ``description`` and ``notes``. The Lora editor adds ``sd version`` (SD1, SD2, SDXL, SD3,
  Unknown), ``activation text``, ``preferred weight`` (a 0..2 slider, "set to 0 to disable": 0 or
  missing means the default multiplier) and ``negative text``; tools such as Civitai Helper write
  those keys for hypernetworks too. Other keys are someone else's and are ignored here.
- The description is the json's ``description`` when the key is there, else ``<stem>.txt``, else
  ``<stem>.description.txt``.
- The preview: for each extension png, jpg, jpeg, webp, gif (A1111 adds its samples format),
  ``<stem>.<ext>`` before ``<stem>.preview.<ext>``.

A broken sidecar never stops a network from loading: each problem becomes a warning that names
the file and the key, and the field keeps its default.
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass

logger = logging.getLogger(__name__)

METADATA_SUFFIX = ".json"
DESCRIPTION_SUFFIXES = (".txt", ".description.txt")
PREVIEW_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "gif")
MAX_SIDECAR_BYTES = 1 << 20  # user notes, not data: a bigger file is a mistake, not read
DEFAULT_STRENGTH = 1.0  # A1111's extra_networks_default_multiplier, where the user left it

# json key -> UserMetadata field, for the keys whose value is text
TEXT_KEYS = {
    "description": "description",
    "notes": "notes",
    "activation text": "activation_text",
    "negative text": "negative_text",
    "sd version": "sd_version",
}
WEIGHT_KEY = "preferred weight"


@dataclass(frozen=True)
class UserMetadata:
    description: str = ""
    notes: str = ""
    activation_text: str = ""
    negative_text: str = ""
    sd_version: str = ""
    preferred_weight: float | None = None  # as the file says; None when absent or unusable
    metadata_path: str | None = None  # the `.json` read, None when there is none
    description_path: str | None = None  # where the description came from
    warnings: tuple[str, ...] = ()

    @property
    def strength(self) -> float:
        """The default strength: the preferred weight when set and non-zero (A1111's rule), else 1."""
        return self.preferred_weight if self.preferred_weight else DEFAULT_STRENGTH


def stem_of(network_path: str | os.PathLike) -> str:
    return os.path.splitext(os.fspath(network_path))[0]


def metadata_path_for(network_path: str | os.PathLike) -> str:
    return stem_of(network_path) + METADATA_SUFFIX


def description_paths_for(network_path: str | os.PathLike) -> list[str]:
    return [stem_of(network_path) + suffix for suffix in DESCRIPTION_SUFFIXES]


def preview_candidates(network_path: str | os.PathLike) -> list[str]:
    """Where A1111 looks for a preview picture, in its order."""
    stem = stem_of(network_path)
    return [f"{stem}{middle}.{ext}" for ext in PREVIEW_EXTENSIONS for middle in ("", ".preview")]


def find_preview(network_path: str | os.PathLike) -> str | None:
    return next((path for path in preview_candidates(network_path) if os.path.isfile(path)), None)


def sidecar_candidates(network_path: str | os.PathLike) -> list[str]:
    """Every file beside the network that this module may read (for change detection)."""
    return [metadata_path_for(network_path), *description_paths_for(network_path), *preview_candidates(network_path)]


def read_user_metadata(network_path: str | os.PathLike) -> UserMetadata:
    """The sidecars of ``network_path``; problems are logged and listed in ``warnings``, never raised."""
    warnings: list[str] = []
    path = metadata_path_for(network_path)
    fields: dict = {}
    metadata_path = None
    if os.path.isfile(path):
        metadata_path = path
        data = _read_json(path, warnings)
        if data is not None:
            fields = parse_user_metadata(data, os.path.basename(path), warnings)
    description_path = metadata_path if "description" in fields else None
    if description_path is None:
        description_path = next((p for p in description_paths_for(network_path) if os.path.isfile(p)), None)
        if description_path is not None:
            text = _read_text(description_path, warnings)
            if text is None:
                description_path = None
            else:
                fields["description"] = text.strip()
    for warning in warnings:
        logger.warning("%s", warning)
    return UserMetadata(**fields, metadata_path=metadata_path, description_path=description_path,
                        warnings=tuple(warnings))


def parse_user_metadata(data: object, source: str, warnings: list[str]) -> dict:
    """The UserMetadata fields found in a parsed `.json`; ``source`` names the file in warnings."""
    if not isinstance(data, dict):
        warnings.append(f"{source}: expected a JSON object of user metadata, got {_kind(data)}; ignored")
        return {}
    fields: dict = {}
    for key, field in TEXT_KEYS.items():
        if key not in data or data[key] is None:
            continue
        value = data[key]
        if isinstance(value, str):
            fields[field] = value.strip()
        else:
            warnings.append(f"{source}: key '{key}' must be text, got {_kind(value)}; ignored")
    if data.get(WEIGHT_KEY) is not None:
        weight = _weight(data[WEIGHT_KEY])
        if weight is None:
            warnings.append(f"{source}: key '{WEIGHT_KEY}' must be a finite number, got {_kind(data[WEIGHT_KEY])}"
                            f" {data[WEIGHT_KEY]!r:.40}; ignored (strength {DEFAULT_STRENGTH})")
        else:
            fields["preferred_weight"] = weight
    return fields


def _weight(value: object) -> float | None:
    # A1111 puts the value into the prompt as it is written, so a numeric string works there too.
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _read_json(path: str, warnings: list[str]) -> object | None:
    text = _read_text(path, warnings)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        warnings.append(f"{os.path.basename(path)}: not valid JSON ({exc.msg} at line {exc.lineno}, "
                        f"column {exc.colno}); its user metadata is ignored")
        return None


def _read_text(path: str, warnings: list[str]) -> str | None:
    name = os.path.basename(path)
    try:
        size = os.path.getsize(path)
        if size > MAX_SIDECAR_BYTES:
            warnings.append(f"{name}: {size:,} bytes, more than the {MAX_SIDECAR_BYTES:,} a sidecar may have; ignored")
            return None
        with open(path, "rb") as f:
            raw = f.read(MAX_SIDECAR_BYTES + 1)
    except OSError as exc:
        warnings.append(f"{name}: cannot be read ({exc.strerror or exc}); ignored")
        return None
    try:
        return raw.decode("utf-8-sig")  # a BOM is what Windows editors add
    except UnicodeDecodeError as exc:
        warnings.append(f"{name}: not UTF-8 text (byte {exc.start}); ignored")
        return None


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)
