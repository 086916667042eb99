"""A server killed mid-batch: named with the job it was running; the job moves to a live server,
or fails (with the jobs left) when no server is left. The jobs wait at a test gate (``live.Gate``)
until the kill is done, so the killed server is always running one."""
from __future__ import annotations

import os
import signal

import pytest

from tests.batch.live import (Gate, assert_png, blur_workflow, gated, manifest_jobs, running_prompt, servers,
                              start_runner, wait_until, write_workflow)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def doomed_servers(tmp_path_factory):
    with servers(tmp_path_factory.mktemp("batch-death"), 2) as started:
        yield started


def kill_when_busy(server, runner) -> str:
    """SIGKILL ``server`` while it runs one of the runner's prompts; returns that prompt id."""
    prompt_id = wait_until(lambda: runner.poll() is None and running_prompt(server), 300, f"a prompt running on {server.url}",
                           interval=0.05)
    os.killpg(server.pid, signal.SIGKILL)
    server.process.wait(30)
    return prompt_id


def test_job_of_a_killed_server_moves_to_the_other(doomed_servers, tmp_path):
    victim, survivor = doomed_servers
    gate = Gate(tmp_path / "gate")
    wf = write_workflow(tmp_path, "slow", gated(blur_workflow(size=64), gate))
    out = tmp_path / "out"
    runner = start_runner(wf, "--server", victim.url, "--server", survivor.url, "--set", "1.color=21..26",
                          "--output", out, log_path=tmp_path / "runner.log")
    try:
        prompt_id = kill_when_busy(victim, runner)
        gate.open()
        code = runner.wait(300)
    finally:
        if runner.poll() is None:
            runner.kill()
    log = (tmp_path / "runner.log").read_text()
    assert code == 0, log[-4000:]
    jobs = manifest_jobs(out)
    assert len(jobs) == 6 and all(j["state"] == "done" for j in jobs.values())
    for name in jobs:
        assert_png(out / f"{name}_3_0.png")
    # The job the victim was running when it died (its prompt id was in the manifest then) ...
    [lost] = [line for line in log.splitlines() if f"server {victim.url} stopped answering while running job" in line]
    lost_job = lost.split("while running job ")[1].split(" ")[0]
    assert lost_job in jobs and "goes to another server" in lost
    # ... was redone on the survivor, and the summary says which server was lost with which job.
    assert jobs[lost_job]["server"] == survivor.url and jobs[lost_job]["prompt_id"] != prompt_id
    assert f"server {victim.url} was lost while running job {lost_job}" in log


def test_last_server_killed_fails_the_job_and_the_rest(doomed_servers, tmp_path):
    _, last = doomed_servers
    if last.process.poll() is not None:
        pytest.fail("the previous test killed the wrong server")
    gate = Gate(tmp_path / "gate")  # never opened: the job runs until its server dies
    wf = write_workflow(tmp_path, "slow", gated(blur_workflow(size=64), gate))
    out = tmp_path / "out"
    runner = start_runner(wf, "--server", last.url, "--set", "1.color=31..34", "--output", out,
                          log_path=tmp_path / "runner.log")
    try:
        kill_when_busy(last, runner)
        code = runner.wait(300)
    finally:
        if runner.poll() is None:
            runner.kill()
    log = (tmp_path / "runner.log").read_text()
    assert code == 1, log[-4000:]
    jobs = manifest_jobs(out)
    failed = {n: j for n, j in jobs.items() if j["state"] == "failed"}
    running = [n for n, j in failed.items() if f"server {last.url} stopped answering while running this job" in j["error"]]
    assert len(running) == 1 and "no other server is left" in failed[running[0]]["error"]
    assert all(j["error"] == "not run: every server was lost" for n, j in failed.items() if n not in running)
    assert len(jobs) == 4 and len(failed) >= 1
    assert f"FAILED {running[0]} (on {last.url}): server {last.url} stopped answering" in log
