"""What a batch run produced: one result per job, and the servers that were lost on the way."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .jobs import Job

DONE, SKIPPED, FAILED = "done", "skipped", "failed"  # skipped: done by an earlier run


@dataclass
class JobResult:
    job: Job
    status: str
    server: str | None = None
    outputs: list[Path] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != FAILED


@dataclass(frozen=True)
class ServerLoss:
    server: str
    job: str  # the job it was running
    reason: str


@dataclass
class BatchResult:
    results: list[JobResult]
    server_losses: list[ServerLoss] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)  # server -> why, at the start

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if not r.ok]

    def by_name(self) -> dict[str, JobResult]:
        return {r.job.name: r for r in self.results}

    def summary_lines(self) -> list[str]:
        counts = {s: sum(r.status == s for r in self.results) for s in (DONE, SKIPPED, FAILED)}
        lines = [f"{len(self.results)} jobs: {counts[DONE]} done, {counts[SKIPPED]} already done, {counts[FAILED]} failed"]
        for loss in self.server_losses:
            lines.append(f"server {loss.server} was lost while running job {loss.job}: {loss.reason}")
        for server, why in self.unreachable.items():
            lines.append(f"server {server} did not answer at the start: {why}")
        for r in self.failed:
            brief = (r.error or "").split("\n\n")[0]  # the traceback after the blank line was logged already
            lines.append(f"FAILED {r.job.name}" + (f" (on {r.server})" if r.server else "") + f": {brief}")
        return lines
