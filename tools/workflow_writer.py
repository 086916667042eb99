"""Write a shipped workflow in both forms: ``workflows/api/<name>.json`` and its UI twin ``workflows/<name>.json``.

The UI form is laid out by ``workflow_format.api_to_ui`` from the node definitions of a live ComfyUI
(started on 127.0.0.1 for the purpose), so its widgets match what the frontend expects.
"""
from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

from hn_core.atomic_write import atomic_write

from .layout import REPO_ROOT
from .workflow_format import api_to_ui


def write_workflow_pair(name: str, prompt: dict, titles: dict[str, str], note: str,
                        comfyui: Path | None = None) -> list[Path]:
    """Write both forms of workflow ``name``; returns the paths written."""
    from batch_runner import embedded_server

    with embedded_server(comfy_root=comfyui) as server:
        object_info = server.get_json("/object_info", timeout=120)
    ui = api_to_ui(prompt, object_info, notes={"About this workflow": note}, titles=titles,
                   workflow_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfyui-hypernetworks/{name}")))
    written = []
    for path, data in ((REPO_ROOT / "workflows" / "api" / f"{name}.json", prompt),
                       (REPO_ROOT / "workflows" / f"{name}.json", ui)):
        text = json.dumps(data, indent=2) + "\n"
        atomic_write(path, lambda f, text=text: f.write(text.encode()))
        logging.info("wrote %s", path)
        written.append(path)
    return written


def prompt_builder() -> tuple[dict, dict[str, str], "callable"]:
    """An empty API prompt, its node titles, and ``add(class_type, title=None, **inputs) -> node id``
    (ids numbered in the order added)."""
    prompt, titles = {}, {}

    def add(class_type: str, title: str | None = None, **inputs) -> str:
        node_id = str(len(prompt) + 1)
        prompt[node_id] = {"class_type": class_type, "inputs": inputs}
        if title:
            titles[node_id] = title
        return node_id

    return prompt, titles, add


def builder_main(doc: str, name: str, build_prompt, note: str, argv: list[str] | None = None) -> int:
    """The command line of a workflow builder (``python -m tools.build_<name>_workflow [--comfyui DIR]``)."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--comfyui", type=Path, default=None, help="default: $COMFYUI_PATH, else .host/ComfyUI")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    prompt, titles = build_prompt()
    write_workflow_pair(name, prompt, titles, note, args.comfyui)
    return 0
