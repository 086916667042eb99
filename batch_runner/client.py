"""One ComfyUI server, spoken to over its HTTP API and its websocket (aiohttp, which ComfyUI ships).

Connection failures become ServerLost (the server is gone); HTTP errors become HttpError;
ComfyUI refusing a prompt becomes JobFailed with its validation errors.
"""
from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator
from urllib.parse import urlencode

import aiohttp

from .comfy_errors import describe_refusal
from .errors import HttpError, JobFailed, ServerLost

log = logging.getLogger(__name__)

_CONNECTION_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError, OSError)


class ComfyClient:
    def __init__(self, url: str, session: aiohttp.ClientSession, request_timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=request_timeout)

    def __repr__(self) -> str:
        return f"ComfyClient({self.url})"

    async def _request(self, method: str, path: str, payload=None, raw: bool = False):
        try:
            async with self.session.request(method, self.url + path, json=payload, timeout=self.timeout) as resp:
                body = await resp.read()
                status = resp.status
        except _CONNECTION_ERRORS as e:
            raise ServerLost(self.url, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from None
        if status >= 400:
            raise HttpError(status, body.decode(errors="replace"), self.url + path)
        if raw:
            return body
        return json.loads(body) if body else None

    async def system_stats(self) -> dict:
        return await self._request("GET", "/system_stats")

    async def queue_prompt(self, prompt: dict, prompt_id: str, client_id: str) -> None:
        """Queue ``prompt`` under ``prompt_id``; JobFailed with ComfyUI's validation errors if refused."""
        try:
            answer = await self._request("POST", "/prompt",
                                         {"prompt": prompt, "prompt_id": prompt_id, "client_id": client_id})
        except HttpError as e:
            if e.status != 400:
                raise
            raise JobFailed("ComfyUI refused the workflow:\n" + describe_refusal(e.json() or e.body, prompt)) from None
        if answer.get("node_errors"):
            # ComfyUI queues the outputs that did validate and drops the rest: for a job that is a failure.
            await self._request("POST", "/queue", {"delete": [prompt_id]})
            raise JobFailed("ComfyUI refused part of the workflow:\n" + describe_refusal(answer, prompt))

    async def history(self, prompt_id: str) -> dict | None:
        """The finished prompt's history entry, or None while it is queued or running (or unknown)."""
        return (await self._request("GET", f"/history/{prompt_id}")).get(prompt_id)

    async def is_queued(self, prompt_id: str) -> bool:
        """Whether the prompt waits in the queue or runs now."""
        queue = await self._request("GET", "/queue")
        items = queue.get("queue_running", []) + queue.get("queue_pending", [])
        return any(len(item) > 1 and item[1] == prompt_id for item in items)

    async def cancel(self, prompt_id: str) -> None:
        """Take the prompt out of the queue, or interrupt it if it runs."""
        await self._request("POST", "/queue", {"delete": [prompt_id]})
        await self._request("POST", "/interrupt", {"prompt_id": prompt_id})

    async def view(self, ref: dict) -> bytes:
        """The bytes of one output file as the history lists it (filename, subfolder, type)."""
        query = urlencode({"filename": ref["filename"], "subfolder": ref.get("subfolder", ""),
                           "type": ref.get("type", "output")})
        return await self._request("GET", f"/view?{query}", raw=True)

    @asynccontextmanager
    async def events(self, client_id: str) -> AsyncIterator["EventStream | None"]:
        """ComfyUI's websocket for ``client_id``, or None when it cannot be opened."""
        ws_url = self.url.replace("http", "ws", 1) + f"/ws?clientId={client_id}"
        try:
            ws = await self.session.ws_connect(ws_url, timeout=aiohttp.ClientWSTimeout(ws_close=5),
                                               heartbeat=30, max_msg_size=0)
        except (aiohttp.WSServerHandshakeError, *_CONNECTION_ERRORS) as e:
            log.warning("%s: no websocket (%s); following jobs by polling /history", self.url, e)
            yield None
            return
        try:
            yield EventStream(ws)
        finally:
            await ws.close()


class EventStream:
    """The JSON messages of a ComfyUI websocket as ``(type, data)``; binary previews are skipped.

    Iteration ends when the socket closes (the server went away, or was restarted).
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws

    def __aiter__(self):
        return self._messages()

    async def _messages(self):
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                try:
                    message = json.loads(msg.data)
                except ValueError:
                    continue
                yield message.get("type"), message.get("data") or {}
            elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                break
