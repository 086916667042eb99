"""One job on one server: queue it, follow it to the end, return its history entry.

Progress comes from the websocket (``progress``, ``executing``, ``execution_*`` messages for our
prompt id); completion is always confirmed by ``/history/<prompt_id>``, which also lists the
outputs. Without a websocket, or when it drops mid-job, ``/history`` is polled instead.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Awaitable, Callable

from .client import ComfyClient, EventStream
from .comfy_errors import describe_failure, succeeded
from .errors import JobFailed, ServerLost

log = logging.getLogger(__name__)

OnEvent = Callable[[str, dict], None]
_TERMINAL = {"execution_success", "execution_error", "execution_interrupted"}
# Polls that may fail in a row before a server counts as lost (a blip is not a death).
_LOST_AFTER = 3


async def run_job(client: ComfyClient, prompt: dict, *, on_queued: Callable[[str], Awaitable[None] | None],
                  on_event: OnEvent, use_websocket: bool, poll_interval: float, timeout: float | None) -> tuple[str, dict]:
    """Run ``prompt``; return ``(prompt_id, history entry)`` of a success.

    ``on_queued(prompt_id)`` is called before the prompt is sent, so a runner killed at any moment
    has already recorded which prompt id to look for. JobFailed for a refusal or a failed node,
    ServerLost when the server goes away.
    """
    prompt_id = str(uuid.uuid4())
    client_id = f"hn-batch-{uuid.uuid4().hex[:12]}"
    result = on_queued(prompt_id)
    if asyncio.iscoroutine(result):
        await result
    deadline = None if timeout is None else time.monotonic() + timeout
    if not use_websocket:
        await client.queue_prompt(prompt, prompt_id, client_id)
        return prompt_id, await wait_for_history(client, prompt_id, poll_interval, deadline)
    async with client.events(client_id) as stream:
        await client.queue_prompt(prompt, prompt_id, client_id)
        if stream is not None:
            await _follow(stream, prompt_id, on_event, deadline)
    return prompt_id, await wait_for_history(client, prompt_id, poll_interval, deadline)


async def adopt_job(client: ComfyClient, prompt_id: str, *, poll_interval: float,
                    timeout: float | None) -> dict | None:
    """A prompt queued by an earlier run of the batch: its successful history entry once it finishes,
    or None when the server does not know it (never sent, or the server restarted since)."""
    entry = await client.history(prompt_id)
    if entry is None and not await client.is_queued(prompt_id):
        return None
    deadline = None if timeout is None else time.monotonic() + timeout
    return entry if entry is not None and succeeded(entry) else await wait_for_history(
        client, prompt_id, poll_interval, deadline)


async def _follow(stream: EventStream, prompt_id: str, on_event: OnEvent, deadline: float | None) -> None:
    """Pass our prompt's messages to ``on_event`` until it ends, the socket closes, or time runs out."""
    async def follow():
        async for event, data in stream:
            if data.get("prompt_id") not in (prompt_id, None):
                continue
            log.debug("websocket: %s %s", event, {k: v for k, v in data.items() if k != "output"})
            on_event(event, data)
            if event in _TERMINAL and data.get("prompt_id") == prompt_id:
                return
            if event == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                return
    try:
        await asyncio.wait_for(follow(), None if deadline is None else max(0.0, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        pass  # wait_for_history below reports the timeout and cancels the prompt


async def wait_for_history(client: ComfyClient, prompt_id: str, poll_interval: float,
                           deadline: float | None) -> dict:
    """Poll ``/history/<prompt_id>`` until the entry appears; raise unless it succeeded."""
    failures = 0
    while True:
        try:
            entry = await client.history(prompt_id)
            failures = 0
        except ServerLost:
            failures += 1
            if failures >= _LOST_AFTER:
                raise
            entry = None
        if entry is not None:
            if succeeded(entry):
                return entry
            raise JobFailed(describe_failure(entry))
        if deadline is not None and time.monotonic() > deadline:
            await client.cancel(prompt_id)
            raise JobFailed("the job did not finish in time; it was cancelled on the server")
        await asyncio.sleep(poll_interval)
