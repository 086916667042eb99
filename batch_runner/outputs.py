"""A finished job's output files: listed from its history entry, downloaded through ``/view``,
written atomically into the output folder as ``<job name>_<node id>_<index><suffix>``."""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from hn_core.atomic_write import atomic_write
from .client import ComfyClient


def output_refs(entry: dict) -> list[tuple[str, int, dict]]:
    """``(node_id, index, ref)`` for every file the prompt's output nodes reported (saved images,
    previews, animations), ``ref`` being ``{"filename", "subfolder", "type"}``."""
    refs = []
    for node_id, output in (entry.get("outputs") or {}).items():
        index = 0
        for items in output.values():
            if not isinstance(items, list):
                continue
            for ref in items:
                if isinstance(ref, dict) and isinstance(ref.get("filename"), str) and "type" in ref:
                    refs.append((str(node_id), index, ref))
                    index += 1
    return refs


def output_name(job_name: str, node_id: str, index: int, ref: dict) -> str:
    return f"{job_name}_{node_id}_{index}{PurePosixPath(ref['filename']).suffix}"


async def download_outputs(client: ComfyClient, job_name: str, entry: dict, output_dir: Path) -> list[str]:
    """Fetch every output of the entry into ``output_dir``; returns the file names written."""
    names = []
    for node_id, index, ref in output_refs(entry):
        data = await client.view(ref)
        name = output_name(job_name, node_id, index, ref)
        atomic_write(Path(output_dir) / name, lambda f: f.write(data))
        names.append(name)
    return names
