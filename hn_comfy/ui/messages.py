"""Show a short text on a node in the ComfyUI frontend (besides the log)."""
from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def show_on_node(node_id, text: str) -> None:
    if node_id is None:
        return
    try:
        from server import PromptServer
        server = PromptServer.instance
    except (ImportError, AttributeError):  # no server (a script or a test using the node directly)
        return
    try:
        server.send_progress_text(text, node_id)
    except Exception:  # a display nicety must never fail the node
        logger.debug("could not send text to node %s", node_id, exc_info=True)
