"""The batch's memory between runs: one JSON file in the output folder, rewritten atomically after
every change, so a runner stopped at any moment (Ctrl-C, SIGKILL) leaves a consistent file.

Per job (by name): the prompt's hash, its state and where it ran:

* ``queued``: sent (or about to be sent) to ``server`` as ``prompt_id``; a later run asks that
  server for the prompt before running the job again, so a job is not done twice;
* ``done``: its outputs are on disk (written before the state changes); skipped by later runs
  while the prompt is unchanged and the files are still there;
* ``failed``: ComfyUI's error text; a later run tries again.
"""
from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: runs unlocked
    fcntl = None

from hn_core.atomic_write import atomic_write
from .errors import BatchError
from .jobs import Job

log = logging.getLogger(__name__)

FILE_NAME = "manifest.json"
VERSION = 1


class Manifest:
    def __init__(self, path: Path, output_dir: Path):
        self.path = Path(path)
        self.output_dir = Path(output_dir)
        self.jobs: dict[str, dict] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError) as e:
                raise BatchError(f"cannot read the manifest {self.path}: {e}") from None
            if data.get("version") != VERSION:
                raise BatchError(f"{self.path}: manifest version {data.get('version')!r}, expected {VERSION}")
            self.jobs = data.get("jobs", {})

    def entry(self, job: Job) -> dict | None:
        """The job's record, unless it was made for a different prompt."""
        entry = self.jobs.get(job.name)
        return entry if entry is not None and entry.get("prompt_hash") == job.prompt_hash else None

    def is_done(self, job: Job) -> bool:
        entry = self.entry(job)
        return (entry is not None and entry.get("state") == "done"
                and all((self.output_dir / name).is_file() for name in entry.get("outputs", [])))

    def in_flight(self, job: Job) -> tuple[str, str] | None:
        """``(server, prompt_id)`` of a job an earlier run sent and did not see finish."""
        entry = self.entry(job)
        if entry is not None and entry.get("state") == "queued":
            return entry["server"], entry["prompt_id"]
        return None

    def mark_queued(self, job: Job, server: str, prompt_id: str) -> None:
        self._set(job, state="queued", server=server, prompt_id=prompt_id, error=None)

    def mark_done(self, job: Job, server: str, prompt_id: str, outputs: list[str], seconds: float) -> None:
        self._set(job, state="done", server=server, prompt_id=prompt_id, outputs=outputs,
                  seconds=round(seconds, 3), error=None)

    def mark_failed(self, job: Job, error: str, server: str | None) -> None:
        self._set(job, state="failed", server=server, error=error, outputs=[])

    def _set(self, job: Job, **fields) -> None:
        entry = self.entry(job) or {}
        entry.update(workflow=job.workflow, overrides=job.overrides, prompt_hash=job.prompt_hash,
                     updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"), **fields)
        self.jobs[job.name] = entry
        self.save()

    def save(self) -> None:
        text = json.dumps({"version": VERSION, "jobs": self.jobs}, indent=1, sort_keys=True) + "\n"
        atomic_write(self.path, lambda f: f.write(text.encode()))


@contextmanager
def exclusive(path: Path):
    """Hold ``<manifest>.lock`` while a batch runs: two runners on one output folder would run its
    jobs twice. The kernel drops the lock when the holder dies, however it dies. (No lock without fcntl.)"""
    if fcntl is None:
        yield
        return
    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchError(f"another batch runner is using {path} (lock {lock_path})") from None
        yield
    finally:
        os.close(fd)
