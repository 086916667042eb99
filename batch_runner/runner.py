"""The batch as a Python call: jobs in, files and a manifest in the output folder, a result back.

    from batch_runner import expand_jobs, load_named_workflows, parse_override, run_batch
    jobs = expand_jobs(load_named_workflows([path]), [parse_override("3.inputs.seed=1..4")])
    result = run_batch(jobs, ["http://127.0.0.1:8188"], Path("out/batch"))
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp

from .client import ComfyClient
from .errors import BatchError, ServerError
from .jobs import Job
from .manifest import FILE_NAME, Manifest, exclusive
from .progress import BatchProgress
from .results import SKIPPED, BatchResult, JobResult
from .scheduler import Scheduler

log = logging.getLogger(__name__)


def run_batch(jobs: list[Job], servers: list[str], output_dir: Path, manifest_path: Path | None = None, *,
              use_websocket: bool = True, poll_interval: float = 0.5, timeout: float | None = None,
              show_progress: bool | None = None) -> BatchResult:
    """Run every job not already done (per the manifest) on ``servers``; never raises for a job.

    ``manifest_path`` defaults to ``<output_dir>/manifest.json``. ``timeout``: seconds per job.
    ``show_progress``: None shows the bar on a terminal only. BatchError when the batch cannot start.
    """
    return asyncio.run(run_batch_async(jobs, servers, output_dir, manifest_path, use_websocket=use_websocket,
                                       poll_interval=poll_interval, timeout=timeout, show_progress=show_progress))


async def run_batch_async(jobs: list[Job], servers: list[str], output_dir: Path, manifest_path: Path | None = None, *,
                          use_websocket: bool = True, poll_interval: float = 0.5, timeout: float | None = None,
                          show_progress: bool | None = None) -> BatchResult:
    names = [job.name for job in jobs]
    if len(set(names)) != len(names):
        raise BatchError("two jobs have the same name: " + next(n for n in names if names.count(n) > 1))
    if not servers:
        raise BatchError("no server to run the jobs on")
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = Path(manifest_path or output_dir / FILE_NAME)
    with exclusive(manifest_path):
        return await _run(jobs, servers, output_dir, Manifest(manifest_path, output_dir), use_websocket=use_websocket,
                          poll_interval=poll_interval, timeout=timeout, show_progress=show_progress)


async def _run(jobs: list[Job], servers: list[str], output_dir: Path, manifest: Manifest, *, use_websocket: bool,
               poll_interval: float, timeout: float | None, show_progress: bool | None) -> BatchResult:
    results: dict[str, JobResult] = {}
    to_do = []
    for job in jobs:
        if manifest.is_done(job):
            entry = manifest.entry(job)
            results[job.name] = JobResult(job, SKIPPED, entry.get("server"),
                                          [output_dir / n for n in entry.get("outputs", [])])
        else:
            to_do.append(job)
    if results:
        log.info("%d of %d jobs already done (manifest %s)", len(results), len(jobs), manifest.path)

    # No proxies from the environment, and no overall time limit (a job's websocket lives for hours).
    session = aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
    async with session:
        clients = [ComfyClient(url, session) for url in dict.fromkeys(servers)]
        unreachable = await _unreachable(clients)
        live = [c for c in clients if c.url not in unreachable]
        if to_do and not live:
            raise BatchError("no server answers: " + "; ".join(f"{u}: {why}" for u, why in unreachable.items()))
        adopted: dict[str, list[tuple[Job, str]]] = {}
        pending = []
        for job in to_do:
            in_flight = manifest.in_flight(job)
            if in_flight and in_flight[0] in {c.url for c in live}:
                adopted.setdefault(in_flight[0], []).append((job, in_flight[1]))
            else:
                pending.append(job)
        progress = BatchProgress(len(jobs), len(results), show_progress)
        scheduler = Scheduler(live, manifest, output_dir, progress, use_websocket=use_websocket,
                              poll_interval=poll_interval, timeout=timeout)
        try:
            results.update(await scheduler.run(pending, adopted))
        finally:
            progress.close()
    return BatchResult([results[job.name] for job in jobs], scheduler.losses, unreachable)


async def _unreachable(clients: list[ComfyClient]) -> dict[str, str]:
    """Servers that do not answer ``/system_stats`` now, with the reason."""
    answers = await asyncio.gather(*(c.system_stats() for c in clients), return_exceptions=True)
    unreachable = {}
    for client, answer in zip(clients, answers):
        if isinstance(answer, (ServerError, aiohttp.ClientError)):
            log.error("server %s does not answer (%s); going on without it", client.url, answer)
            unreachable[client.url] = str(answer)
        elif isinstance(answer, BaseException):
            raise answer
    return unreachable
