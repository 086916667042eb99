"""API-format workflow files: what ``POST /prompt`` takes and the frontend's "Export (API)" saves.

``{node_id: {"class_type": ..., "inputs": {name: value or [source_id, output_index]}, "_meta": {"title": ...}}}``
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import BatchError


def is_api_workflow(data) -> bool:
    return isinstance(data, dict) and bool(data) and all(
        isinstance(n, dict) and "class_type" in n for n in data.values())


def load_api_workflow(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise BatchError(f"cannot read workflow {path}: {e}") from None
    if not is_api_workflow(data):
        hint = " (this looks like a UI workflow: export it with \"Export (API)\")" if isinstance(data, dict) and "nodes" in data else ""
        raise BatchError(f"{path} is not an API-format workflow (node id -> class_type/inputs){hint}")
    return data


def load_api_workflows(folder: Path) -> dict[str, dict]:
    """Every ``*.json`` in ``folder``, by file stem, in name order."""
    return {path.stem: load_api_workflow(path) for path in sorted(Path(folder).glob("*.json"))}


def load_named_workflows(paths: list[Path]) -> dict[str, dict]:
    """Workflow files (or folders of them) given on the command line, by file stem; stems must differ."""
    workflows: dict[str, dict] = {}
    for path in map(Path, paths):
        found = load_api_workflows(path) if path.is_dir() else {path.stem: load_api_workflow(path)}
        if path.is_dir() and not found:
            raise BatchError(f"no *.json workflows in {path}")
        for name, data in found.items():
            if name in workflows:
                raise BatchError(f"two workflows are named {name!r}; job names come from file names, rename one")
            workflows[name] = data
    return workflows
