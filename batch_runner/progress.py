"""What the user sees while a batch runs: one tqdm bar over the jobs, and in its postfix what each
server is doing (job, node, sampling step) from the websocket's ``executing`` / ``progress``
messages. The bar hides itself when stderr is not a terminal; the log lines remain."""
from __future__ import annotations

import logging

from tqdm import tqdm

log = logging.getLogger(__name__)


class BatchProgress:
    def __init__(self, total: int, already_done: int, enabled: bool | None = None):
        # enabled=None: tqdm decides (on for a terminal, off for a pipe or a log file).
        self.bar = tqdm(total=total, initial=already_done, unit="job", desc="batch", dynamic_ncols=True,
                        disable=None if enabled is None else not enabled)
        self.doing: dict[str, str] = {}

    def started(self, server: str, job_name: str) -> None:
        log.info("job %s: running on %s", job_name, server)
        self._show(server, job_name)

    def event(self, server: str, job_name: str, event: str, data: dict) -> None:
        if event == "progress" and data.get("max"):
            self._show(server, f"{job_name} node {data.get('node')} {data.get('value')}/{data.get('max')}")
        elif event == "executing" and data.get("node") is not None:
            self._show(server, f"{job_name} node {data['node']}")

    def idle(self, server: str) -> None:
        self.doing.pop(server, None)
        self._refresh()

    def finished(self, server: str | None) -> None:
        self.doing.pop(server, None)
        self.bar.update(1)
        self._refresh()

    def _show(self, server: str, text: str) -> None:
        self.doing[server] = text
        self._refresh()

    def _refresh(self) -> None:
        self.bar.set_postfix_str(" | ".join(self.doing.values()), refresh=True)

    def close(self) -> None:
        self.bar.close()
