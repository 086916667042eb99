"""The runner against two live servers: one server, both servers, polling, rejected and failing
jobs, and resuming after the runner is killed with SIGKILL."""
from __future__ import annotations

import json
import signal

import pytest
from PIL import Image

from batch_runner import expand_jobs, parse_override, run_batch
from batch_runner.manifest import Manifest
from batch_runner.sync_http import request_json
from tests.batch.live import (Gate, assert_png, blur_workflow, gated, history_ids, load_image_workflow, manifest_jobs,
                              run_runner, running_prompt, servers, start_runner, wait_until, write_workflow)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory):
    with servers(tmp_path_factory.mktemp("batch-servers"), 2) as started:
        yield started


def test_one_server_sweep_downloads_outputs_and_a_rerun_redoes_nothing(two_servers, tmp_path):
    server = two_servers[0]
    wf = write_workflow(tmp_path, "blur", blur_workflow(size=48))
    out = tmp_path / "out"
    before = history_ids(server)
    proc = run_runner(wf, "--server", server.url, "--set", "1.inputs.color=250..252", "--set", "Canvas.height=32",
                      "--output", out, "--verbose")
    assert proc.returncode == 0, proc.stderr[-4000:]
    # Followed over the websocket: ComfyUI's messages for each prompt, up to its end.
    assert "no websocket" not in proc.stderr
    assert proc.stderr.count("websocket: execution_success") == 3 and "websocket: executing {'node': '2'" in proc.stderr
    names = ["blur__color=250", "blur__color=251", "blur__color=252"]
    jobs = manifest_jobs(out)
    assert sorted(jobs) == names and all(jobs[n]["state"] == "done" for n in names)
    for blue, name in zip((250, 251, 252), names):
        [png] = jobs[name]["outputs"]
        assert png == f"{name}_3_0.png"
        assert_png(out / png)
        with Image.open(out / png) as image:  # the override reached the graph
            r, g, b = image.convert("RGB").getpixel((5, 5))
            assert image.size == (48, 32) and (r, g) == (0, 0) and abs(b - blue) <= 1  # blur rounds down
        assert jobs[name]["server"] == server.url and jobs[name]["overrides"] == {"1.color": blue, "1.height": 32}
    assert history_ids(server) - before == {jobs[n]["prompt_id"] for n in names}
    assert "3 jobs: 3 done, 0 already done, 0 failed" in proc.stderr

    again = run_runner(wf, "--server", server.url, "--set", "1.inputs.color=250..252", "--set", "Canvas.height=32",
                       "--output", out)
    assert again.returncode == 0 and "3 jobs: 0 done, 3 already done, 0 failed" in again.stderr
    assert len(history_ids(server) - before) == 3  # nothing queued the second time

    # An output gone from disk makes its job due again.
    (out / "blur__color=251_3_0.png").unlink()
    third = run_runner(wf, "--server", server.url, "--set", "1.inputs.color=250..252", "--set", "Canvas.height=32",
                       "--output", out)
    assert third.returncode == 0 and "3 jobs: 1 done, 2 already done, 0 failed" in third.stderr
    assert_png(out / "blur__color=251_3_0.png")


def test_polling_without_the_websocket(two_servers, tmp_path):
    server = two_servers[1]
    wf = write_workflow(tmp_path, "poll", blur_workflow(size=16))
    proc = run_runner(wf, "--server", server.url, "--poll", "--set", "1.color=7", "--output", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert_png(tmp_path / "out" / "poll_3_0.png")


def test_two_servers_share_the_jobs(two_servers, tmp_path):
    # Through the Python API, which the main job uses.
    workflows = {"spread": blur_workflow(size=256, radius=20)}
    jobs = expand_jobs(workflows, [parse_override("1.inputs.color=100..107")])
    before = [history_ids(s) for s in two_servers]
    result = run_batch(jobs, [s.url for s in two_servers], tmp_path / "out", show_progress=False)
    assert result.ok and [r.status for r in result.results] == ["done"] * 8
    served = {s.url: sum(r.server == s.url for r in result.results) for s in two_servers}
    assert all(count >= 1 for count in served.values()) and sum(served.values()) == 8, served
    for server, seen in zip(two_servers, before):
        assert len(history_ids(server) - seen) == served[server.url]
    for r in result.results:
        [png] = r.outputs
        assert png == tmp_path / "out" / f"{r.job.name}_3_0.png"
        assert_png(png)


def test_rejected_and_failing_jobs_are_reported_and_the_others_finish(two_servers, tmp_path):
    server = two_servers[0]
    (server.base.input / "broken.png").write_bytes(b"this is not an image")
    wf = write_workflow(tmp_path, "blur", blur_workflow(size=16))
    broken = write_workflow(tmp_path, "broken", load_image_workflow("broken.png"))
    missing = write_workflow(tmp_path, "missing", load_image_workflow("no_such_image.png"))
    out = tmp_path / "out"
    proc = run_runner(wf, broken, missing, "--server", server.url, "--set", "2.blur_radius=1,99,2", "--output", out)
    assert proc.returncode == 1, proc.stderr[-4000:]
    jobs = manifest_jobs(out)
    assert {n: j["state"] for n, j in jobs.items()} == {
        "blur__blur_radius=1": "done", "blur__blur_radius=99": "failed", "blur__blur_radius=2": "done",
        "broken__blur_radius=1": "failed", "broken__blur_radius=99": "failed", "broken__blur_radius=2": "failed",
        "missing__blur_radius=1": "failed", "missing__blur_radius=99": "failed", "missing__blur_radius=2": "failed"}
    assert_png(out / "blur__blur_radius=1_3_0.png") and assert_png(out / "blur__blur_radius=2_3_0.png")
    # ComfyUI's own words: the validation error, and the node that raised with its exception.
    assert jobs["blur__blur_radius=99"]["error"].splitlines() == [
        "ComfyUI refused the workflow:", "Prompt outputs failed validation",
        "  node 2 (ImageBlur): Value 99 bigger than max of 31: blur_radius"]
    assert jobs["broken__blur_radius=1"]["error"].startswith(
        "node 1 (LoadImage) failed: PIL.UnidentifiedImageError: cannot identify image file")
    assert "Invalid image file: no_such_image.png" in jobs["missing__blur_radius=1"]["error"]
    assert "FAILED blur__blur_radius=99" in proc.stderr and "Value 99 bigger than max of 31" in proc.stderr
    assert "node 1 (LoadImage) failed: PIL.UnidentifiedImageError" in proc.stderr
    assert "9 jobs: 2 done, 0 already done, 7 failed" in proc.stderr


def test_resume_after_the_runner_is_killed(two_servers, tmp_path):
    server = two_servers[1]
    gate = Gate(tmp_path / "gate")
    wf = write_workflow(tmp_path, "slow", gated(blur_workflow(size=64), gate))
    out = tmp_path / "out"
    args = (wf, "--server", server.url, "--set", "1.inputs.color=11..15", "--output", out)
    names = [f"slow__color={c}" for c in range(11, 16)]
    before = history_ids(server)
    gate.let_through(1)
    runner = start_runner(*args, log_path=tmp_path / "first.log")
    try:
        # Kill it after one job finished, while the next one waits at the gate on the server.
        wait_until(lambda: sum(j["state"] == "done" for j in manifest_jobs(out).values()) == 1
                   and any(j["state"] == "queued" for j in manifest_jobs(out).values()) and gate.waiting(),
                   300, "a job done, the next one running")
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait(30)
    killed_at = manifest_jobs(out)
    done_before = {n for n, j in killed_at.items() if j["state"] == "done"}
    assert len(done_before) == 1, killed_at
    gate.open()

    proc = run_runner(*args)
    assert proc.returncode == 0, proc.stderr[-4000:]
    jobs = manifest_jobs(out)
    assert sorted(jobs) == sorted(names) and all(j["state"] == "done" for j in jobs.values())
    for name in done_before:  # finished jobs were neither redone nor rewritten
        assert jobs[name] == killed_at[name]
    for name in names:
        assert_png(out / f"{name}_3_0.png")
    # Every job ran exactly once on the server: one history entry each, no other prompt.
    new = history_ids(server) - before
    assert new == {j["prompt_id"] for j in jobs.values()} and len(new) == len(names)
    assert f"{len(names)} jobs: {len(names) - len(done_before)} done, {len(done_before)} already done" in proc.stderr
    # The job in flight at the kill was collected from the server, not run a second time.
    assert "while the runner was away" in proc.stderr
    assert json.loads((out / "manifest.json").read_text())["version"] == 1


def test_a_job_over_its_time_limit_is_cancelled_on_the_server(two_servers, tmp_path):
    server = two_servers[0]
    gate = Gate(tmp_path / "gate")  # never opened: the job cannot finish within any limit
    wf = write_workflow(tmp_path, "late", gated(blur_workflow(size=16), gate))
    out = tmp_path / "out"
    proc = run_runner(wf, "--server", server.url, "--timeout", "0.5", "--set", "1.color=77", "--output", out)
    assert proc.returncode == 1, proc.stderr[-4000:]
    job = manifest_jobs(out)["late"]
    assert job["state"] == "failed" and job["error"] == "the job did not finish in time; it was cancelled on the server"
    assert not (out / "late_3_0.png").exists()
    # Interrupted, not left running: the server goes idle and records no success for it.
    wait_until(lambda: running_prompt(server) is None, 120, "the server to go idle")
    entry = request_json("GET", f"{server.url}/history/{job['prompt_id']}").get(job["prompt_id"])
    assert entry is None or entry["status"]["status_str"] != "success"


def test_a_prompt_the_server_forgot_is_run_again(two_servers, tmp_path):
    # As after a server restart: the manifest says the job was sent, the server has no such prompt.
    server = two_servers[1]
    wf = write_workflow(tmp_path, "forgot", blur_workflow(size=16))
    out = tmp_path / "out"
    [job] = expand_jobs({"forgot": json.loads(wf.read_text())}, [parse_override("1.color=5")])
    Manifest(out / "manifest.json", out).mark_queued(job, server.url, "prompt-from-before-the-restart")
    before = history_ids(server)
    proc = run_runner(wf, "--server", server.url, "--set", "1.color=5", "--output", out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"job forgot: {server.url} no longer knows its prompt prompt-from-before-the-restart" in proc.stderr
    entry = manifest_jobs(out)["forgot"]
    assert entry["state"] == "done" and history_ids(server) - before == {entry["prompt_id"]}
    assert_png(out / "forgot_3_0.png")
