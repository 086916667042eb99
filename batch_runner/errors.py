"""What can go wrong in a batch, told apart by who is at fault."""
from __future__ import annotations

import json


class BatchError(RuntimeError):
    """The batch cannot run at all: bad arguments, unreadable workflows, no server."""


class ServerError(RuntimeError):
    """A server did not start, died, or answered with an error."""


class HttpError(ServerError):
    """A server answered an HTTP request with an error status."""

    def __init__(self, status: int, body: str, url: str):
        super().__init__(f"HTTP {status} from {url}: {body[:2000]}")
        self.status, self.body, self.url = status, body, url

    def json(self):
        """The body decoded as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class ServerLost(ServerError):
    """A server stopped answering (killed, crashed, restarted, network gone)."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"server {url} stopped answering: {reason}")
        self.url, self.reason = url, reason


class JobFailed(RuntimeError):
    """ComfyUI refused a job or a node failed; the message is ComfyUI's own account."""
