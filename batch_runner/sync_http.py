"""Blocking JSON requests to a ComfyUI server (startup checks, tools, tests).

The batch itself talks to servers through the asynchronous client (``client.py``).
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

from .errors import HttpError

# Never route requests to our own servers through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def request_json(method: str, url: str, payload=None, timeout: float = 30.0):
    """Send ``payload`` as JSON, return the decoded answer (None when empty); HttpError on >= 400."""
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        raise HttpError(e.code, e.read().decode(errors="replace"), url) from None
    return json.loads(body) if body else None
