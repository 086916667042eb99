"""ComfyUI's own account of a failed prompt, as text a user can act on.

Two shapes: ``POST /prompt`` refusing a prompt (``error`` + ``node_errors`` per node: bad value,
missing model, unknown node type), and a history entry / websocket ``execution_error`` naming the
node that raised, its type and the exception.
"""
from __future__ import annotations

import json


def describe_refusal(body, prompt: dict) -> str:
    """The validation errors of a refused prompt: the summary, then one line per node and input."""
    if not isinstance(body, dict):
        return str(body)
    lines = []
    error = body.get("error") or {}
    summary = f"{error.get('message', '')} {error.get('details', '')}".strip() if isinstance(error, dict) else str(error)
    if summary:
        lines.append(summary)
    for node_id, node_error in (body.get("node_errors") or {}).items():
        class_type = node_error.get("class_type") or prompt.get(node_id, {}).get("class_type")
        for err in node_error.get("errors", []):
            lines.append(f"  node {node_id} ({class_type}): {err.get('message')}: {err.get('details')}")
    return "\n".join(lines) or json.dumps(body)


def describe_execution_error(data: dict) -> str:
    """An ``execution_error`` message: the node, its type, the exception, then the traceback."""
    tb = "".join(data.get("traceback") or []).rstrip()
    return (f"node {data.get('node_id')} ({data.get('node_type')}) failed: "
            f"{data.get('exception_type')}: {data.get('exception_message')}"
            + (f"\n{tb}" if tb else ""))


def describe_failure(entry: dict) -> str:
    """Why a finished history entry did not succeed: the failing node, or where it was interrupted."""
    for event, data in (entry.get("status") or {}).get("messages", []):
        if event == "execution_error":
            return describe_execution_error(data)
        if event == "execution_interrupted":
            return f"interrupted at node {data.get('node_id')} ({data.get('node_type')})"
    return f"the workflow failed: {json.dumps(entry.get('status'))}"


def succeeded(entry: dict) -> bool:
    return (entry.get("status") or {}).get("status_str") == "success"
