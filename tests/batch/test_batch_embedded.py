"""No --server: the runner starts the embedded ComfyUI (this pack installed, the given input folder
linked in), and the server goes away with the runner: killed (SIGKILL), interrupted (Ctrl-C) or done.
The batch resumes across the three runs. The jobs wait at a test gate (``live.Gate``), so every
signal lands while a job runs."""
from __future__ import annotations

import json
import re
import shutil
import signal
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from batch_runner import embedded_server, expand_jobs, parse_override, run_batch
from batch_runner.sync_http import request_json
from tests.batch.live import (Gate, assert_png, blur_workflow, gate_node_args, gated, load_image_workflow, manifest_jobs,
                              start_runner, wait_until, write_workflow)

pytestmark = pytest.mark.e2e

_SERVER = re.compile(r"ComfyUI server pid (\d+), http://127\.0\.0\.1:(\d+)")
_BASE = re.compile(r"starting the embedded ComfyUI \(.*?\) in (\S+)")


def process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"  # exited; only its reaping is left to whoever adopted it


def port_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


def embedded_server_of(log: Path) -> tuple[int, int, Path]:
    text = log.read_text()
    pid, port = map(int, _SERVER.findall(text)[-1])
    return pid, port, Path(_BASE.findall(text)[-1])


def test_embedded_server_lives_and_dies_with_the_runner(tmp_path):
    # Every job waits at a gate the test opens one job at a time, so each signal lands mid-job
    # however fast the machine is (a job that merely takes a while could finish first).
    gate = Gate(tmp_path / "gate")
    images = tmp_path / "images"
    images.mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(images / "noise.png")
    wf = write_workflow(tmp_path, "embedded", gated(load_image_workflow("noise.png"), gate))
    out = tmp_path / "out"
    gate_args = [f"--server-arg={arg}" for arg in gate_node_args(tmp_path)]
    args = (wf, "--input", images, "--set", "2.inputs.sigma=5..9", "--output", out, *gate_args)
    names = [f"embedded__sigma={s}" for s in range(5, 10)]

    def done() -> set[str]:
        return {n for n, j in manifest_jobs(out).items() if j["state"] == "done"}

    def run_until(jobs_done: int, log: Path):
        """Start the runner with one more job let through; return it once that job is done and the
        next one waits at the gate."""
        gate.let_through(1)
        runner = start_runner(*args, log_path=log)
        try:
            wait_until(lambda: runner.poll() is None and _SERVER.search(log.read_text())
                       and len(done()) == jobs_done and gate.waiting(), 600,
                       f"{jobs_done} job(s) done and the next one waiting")
        except BaseException:
            runner.kill()
            raise
        return runner

    # 1. SIGKILL the runner mid-batch: the kernel takes its server down with it.
    first_log = tmp_path / "first.log"
    runner = run_until(1, first_log)
    pid, port, base = embedded_server_of(first_log)
    runner.send_signal(signal.SIGKILL)
    runner.wait(30)
    # (A killed process shows as a zombie before its last thread has let go of the socket.)
    wait_until(lambda: process_gone(pid) and port_closed(port), 30, f"the server (pid {pid}) to die with its runner")
    shutil.rmtree(base.parent, ignore_errors=True)  # a killed runner cannot clean up its temp folder
    gate.forget_waiting()  # the killed server's job never left the gate
    done_first = done()
    assert len(done_first) == 1

    # 2. Ctrl-C: the runner stops the server, removes its base directory and exits 130.
    second_log = tmp_path / "second.log"
    runner = run_until(2, second_log)
    pid, port, base = embedded_server_of(second_log)
    runner.send_signal(signal.SIGINT)
    assert runner.wait(120) == 130, second_log.read_text()[-4000:]
    assert process_gone(pid) and port_closed(port) and not base.exists()
    assert "interrupted; run the same command again to resume" in second_log.read_text()
    done_second = done()
    assert done_first < done_second and len(done_second) == 2
    gate.open()

    # 3. To the end: only the jobs not done yet run; the server is stopped afterwards.
    third_log = tmp_path / "third.log"
    runner = start_runner(*args, log_path=third_log)
    assert runner.wait(600) == 0, third_log.read_text()[-4000:]
    pid, port, base = embedded_server_of(third_log)
    assert process_gone(pid) and port_closed(port) and not base.exists()
    jobs = manifest_jobs(out)
    assert sorted(jobs) == sorted(names) and all(j["state"] == "done" for j in jobs.values())
    for name in names:
        assert_png(out / f"{name}_3_0.png")
        with Image.open(out / f"{name}_3_0.png") as image:  # the input folder's image, blurred
            assert image.size == (64, 64)
    assert "5 jobs: 3 done, 2 already done, 0 failed" in third_log.read_text()
    # This pack was loaded by every embedded server (ComfyUI prints "(IMPORT FAILED)" otherwise).
    server_log = (out / "comfyui-embedded.log").read_text()
    assert len(re.findall(r"seconds: \S+/custom_nodes/comfyui-hypernetworks$", server_log, re.M)) == 3


def test_embedded_server_from_python_with_files_linked_in_and_a_kept_base(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "my_model.safetensors").write_bytes(b"only listed, never loaded")
    (models / "my_style.pt").write_bytes(b"only listed, never loaded")
    base_root = tmp_path / "kept-base"
    jobs = expand_jobs({"py": blur_workflow(size=16)}, [parse_override("1.color=1,2")])
    with embedded_server(checkpoints=[models / "my_model.safetensors"], hypernetworks=[models / "my_style.pt"],
                         base_root=base_root) as server:
        info = request_json("GET", server.url + "/object_info/LoadHypernetwork")  # the pack is loaded
        assert "my_style.pt" in json.dumps(info["LoadHypernetwork"]["input"]["required"]["hypernetwork_name"])
        ckpt = request_json("GET", server.url + "/object_info/CheckpointLoaderSimple")
        assert "my_model.safetensors" in json.dumps(ckpt["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"])
        result = run_batch(jobs, [server.url], tmp_path / "out", show_progress=False)
        pid, port = server.pid, server.port
    assert result.ok and [p.name for r in result.results for p in r.outputs] == ["py__color=1_3_0.png", "py__color=2_3_0.png"]
    assert process_gone(pid) and port_closed(port)
    # The base directory stays: what ComfyUI itself saved is still there.
    assert sorted(p.name for p in (base_root / "output").iterdir()) == ["batch_00001_.png", "batch_00002_.png"]
    assert (base_root / "comfyui.log").is_file()
