"""Training progress: ComfyUI's progress bar, a step/loss line under the node, and the console."""
from __future__ import annotations

import logging
import sys
import time

import comfy.utils

from ...hn_core.training import StepReport

logger = logging.getLogger(__name__)


class TrainingProgress:
    """Callable once per finished step (hn_core's `on_step`)."""

    def __init__(self, first_step: int, last_step: int, node_id: str | None = None, log_every_s: float = 10.0):
        self.first_step = first_step
        self.node_id = node_id
        self.bar = comfy.utils.ProgressBar(max(1, last_step - first_step), node_id=node_id)
        self.log_every_s = log_every_s
        self._last_log = 0.0

    def __call__(self, report: StepReport) -> None:
        self.bar.update_absolute(report.step - self.first_step, max(1, report.last_step - self.first_step))
        text = f"step {report.step}/{report.last_step}  loss {report.loss:.5f}  lr {report.learning_rate:.3g}"
        self._show_under_node(text)
        now = time.monotonic()
        if now - self._last_log >= self.log_every_s or report.step in (self.first_step + 1, report.last_step):
            self._last_log = now
            logger.info("hypernetwork training: %s", text)

    def show_picture(self, picture, max_size: int | None = None) -> None:
        """Show a PIL picture on the node, as a sampler's live preview shows (through ComfyUI's
        progress hook; the bar keeps its position)."""
        self.bar.update_absolute(self.bar.current, self.bar.total, ("PNG", picture, max_size))

    def _show_under_node(self, text: str) -> None:
        # Only when ComfyUI's server runs (it is already imported then); never import it here.
        server = sys.modules.get("server")
        instance = getattr(getattr(server, "PromptServer", None), "instance", None)
        if instance is not None and self.node_id is not None and hasattr(instance, "send_progress_text"):
            instance.send_progress_text(text, self.node_id)
