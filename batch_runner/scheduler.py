"""Spreading jobs over servers: each server runs one job at a time, and a free server takes the next.

One worker per server pulls from a shared queue. A server that stops answering is dropped for the
rest of the batch; the job it was running goes back to the queue for another server (at most
``max_server_losses`` times per job, so a job that crashes servers does not take them all down),
or fails when no server is left. Jobs an earlier run left in flight on a server are first looked
for on that server (``adopt_job``) and only run again if the server no longer knows them.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from .client import ComfyClient
from .errors import HttpError, JobFailed, ServerLost
from .execute import adopt_job, run_job
from .jobs import Job
from .manifest import Manifest
from .outputs import download_outputs
from .progress import BatchProgress
from .results import DONE, FAILED, JobResult, ServerLoss

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, clients: list[ComfyClient], manifest: Manifest, output_dir: Path, progress: BatchProgress,
                 *, use_websocket: bool = True, poll_interval: float = 0.5, timeout: float | None = None,
                 max_server_losses: int = 2):
        self.clients = clients
        self.manifest = manifest
        self.output_dir = Path(output_dir)
        self.progress = progress
        self.use_websocket = use_websocket
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.max_server_losses = max_server_losses
        self.results: dict[str, JobResult] = {}
        self.losses: list[ServerLoss] = []
        self._alive = {c.url for c in clients}
        self._losses_per_job: dict[str, int] = {}
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._remaining = 0
        self._all_finished = asyncio.Event()

    async def run(self, pending: list[Job], adopted: dict[str, list[tuple[Job, str]]]) -> dict[str, JobResult]:
        """Run ``pending`` jobs and collect ``adopted`` ones (server url -> [(job, prompt id)])."""
        self._remaining = len(pending) + sum(map(len, adopted.values()))
        for job in pending:
            self._queue.put_nowait(job)
        if self._remaining == 0:
            return self.results
        workers = [asyncio.create_task(self._worker(c, adopted.get(c.url, []))) for c in self.clients]
        try:
            await self._all_finished.wait()
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return self.results

    async def _worker(self, client: ComfyClient, adopted: list[tuple[Job, str]]) -> None:
        try:
            for index, (job, prompt_id) in enumerate(adopted):
                try:
                    await self._attempt(client, job, prompt_id)
                except ServerLost:
                    self._requeue([later for later, _ in adopted[index + 1:]])  # their prompts went with the server
                    raise
            while True:
                job = await self._queue.get()
                await self._attempt(client, job)
        except ServerLost:
            return  # reported by _attempt; this server takes no more jobs

    async def _attempt(self, client: ComfyClient, job: Job, adopt_prompt_id: str | None = None) -> None:
        """Run (or collect) one job on ``client``; re-raises ServerLost after dealing with the job."""
        t0 = time.perf_counter()
        self.progress.started(client.url, job.name)
        try:
            if adopt_prompt_id is not None:
                entry = await adopt_job(client, adopt_prompt_id, poll_interval=self.poll_interval, timeout=self.timeout)
                if entry is None:
                    log.info("job %s: %s no longer knows its prompt %s (restarted?); running it again",
                             job.name, client.url, adopt_prompt_id)
                    self.progress.idle(client.url)
                    self._requeue([job])
                    return
                log.info("job %s: finished on %s while the runner was away; collecting its outputs", job.name, client.url)
                prompt_id = adopt_prompt_id
            else:
                prompt_id, entry = await run_job(
                    client, job.prompt, on_queued=lambda pid: self.manifest.mark_queued(job, client.url, pid),
                    on_event=lambda event, data: self.progress.event(client.url, job.name, event, data),
                    use_websocket=self.use_websocket, poll_interval=self.poll_interval, timeout=self.timeout)
            names = await download_outputs(client, job.name, entry, self.output_dir)
            seconds = time.perf_counter() - t0
            self.manifest.mark_done(job, client.url, prompt_id, names, seconds)
            log.info("job %s: done on %s in %.1f s: %s", job.name, client.url, seconds, ", ".join(names) or "no outputs")
            self._finish(JobResult(job, DONE, client.url, [self.output_dir / n for n in names], seconds=seconds))
        except ServerLost as e:
            self._server_lost(client, job, e)
            raise
        except (JobFailed, HttpError) as e:
            self._fail(job, str(e), client.url, time.perf_counter() - t0)
        except Exception as e:  # a bug of ours must fail one job, not hang the batch
            log.exception("job %s: unexpected error", job.name)
            self._fail(job, f"{type(e).__name__}: {e}", client.url, time.perf_counter() - t0)

    def _server_lost(self, client: ComfyClient, job: Job, error: ServerLost) -> None:
        self._alive.discard(client.url)
        self.losses.append(ServerLoss(client.url, job.name, error.reason))
        losses = self._losses_per_job[job.name] = self._losses_per_job.get(job.name, 0) + 1
        self.progress.idle(client.url)
        if self._alive and losses < self.max_server_losses:
            log.error("server %s stopped answering while running job %s (%s); the job goes to another server "
                      "(%s)", client.url, job.name, error.reason, ", ".join(sorted(self._alive)))
            self._requeue([job])
        else:
            why = "no other server is left" if not self._alive else f"it was running on {losses} servers that were lost"
            log.error("server %s stopped answering while running job %s (%s); %s", client.url, job.name,
                      error.reason, why)
            self._fail(job, f"server {client.url} stopped answering while running this job ({error.reason}); {why}",
                       client.url, 0.0)
        self._requeue([])

    def _requeue(self, jobs: list[Job]) -> None:
        """Back to the queue for a live server; with none left, the queue's jobs all fail."""
        for job in jobs:
            self._queue.put_nowait(job)
        if not self._alive:
            while not self._queue.empty():
                self._fail(self._queue.get_nowait(), "not run: every server was lost", None, 0.0)

    def _fail(self, job: Job, error: str, server: str | None, seconds: float) -> None:
        log.error("job %s FAILED%s:\n%s", job.name, f" on {server}" if server else "", error)
        self.manifest.mark_failed(job, error, server)
        self._finish(JobResult(job, FAILED, server, error=error, seconds=seconds))

    def _finish(self, result: JobResult) -> None:
        self.results[result.job.name] = result
        self.progress.finished(result.server)
        self._remaining -= 1
        if self._remaining <= 0:
            self._all_finished.set()
