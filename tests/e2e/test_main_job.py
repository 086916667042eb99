"""The main job, run as a user runs it: provisioning, default model, server, workflows, cleanup."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from tools import demo_dataset
from tools.layout import REPO_ROOT
from tools.style_score import style_distance

pytestmark = pytest.mark.e2e


def files_written_since(root: Path, since: float) -> list[Path]:
    # Bytecode aside (the job redirects its own; other Python processes may not), nothing else.
    return [p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
            and p.stat().st_mtime >= since]


def run_main_job(out: Path, cache_dir: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "run_main_job.sh"), "--output", str(out), "--cache", str(cache_dir), *extra],
        capture_output=True, text=True, timeout=1800,
    )
    return proc, json.loads((out / "summary.json").read_text())


def test_main_job_trains_renders_and_sheets_through_the_batch_runner(tmp_path, comfy_root, cache_dir,
                                                                    default_checkpoint):
    out = tmp_path / "main_job"
    started = time.time()
    proc, summary = run_main_job(out, cache_dir)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert summary["ok"] and summary["default_model"]["path"] == str(default_checkpoint)
    assert "draws coloured shapes on plain backgrounds, nothing else" in log  # told plainly what the model is

    shipped = sorted(p.stem for p in (REPO_ROOT / "workflows" / "api").glob("*.json"))
    jobs = {job["name"]: job for job in summary["jobs"]}
    assert sorted(jobs) == shipped and all(job["status"] == "done" for job in jobs.values())
    for job in jobs.values():
        assert job["outputs"], job
        for output in map(Path, job["outputs"]):
            assert output.parent == out / "images" and output.name.startswith(job["name"] + "_")
            with Image.open(output) as image:
                assert image.format == "PNG" and image.mode in ("RGB", "RGBA")

    # Training: the saved file is a real A1111 hypernetwork with the workflow's step count.
    train_prompt = json.loads((REPO_ROOT / "workflows" / "api" / "train_hypernetwork.json").read_text())
    [train_node] = [n for n in train_prompt.values() if n["class_type"] == "TrainHypernetwork"]
    [trained] = [Path(p) for p in summary["trained_hypernetworks"] if p.endswith(".pt")]
    assert trained.parent == out / "hypernetworks"
    from hn_core import load_hypernetwork
    network = load_hypernetwork(str(trained))
    assert network.info.step == train_node["inputs"]["steps"]

    # The sweep: the trained network visibly steers the demo model toward the training set's style.
    sweep = summary["style_sweep"]
    assert [point["strength"] for point in sweep] == [0.0, 0.5, 1.0]
    images = [[Path(p) for p in point["images"]] for point in sweep]
    assert all(len(paths) == len(images[0]) >= 2 and all(p.is_file() for p in paths) for paths in images)
    style = sorted((REPO_ROOT / "datasets" / "hn_demo_dataset").glob("*.png"))
    distance = [style_distance(paths, style) for paths in images]  # recomputed here, not read back
    assert distance == pytest.approx([point["style_distance"] for point in sweep], abs=1e-4)
    assert distance[0] > distance[1] > distance[2], distance  # monotonic in strength
    assert distance[2] <= 0.5 * distance[0], distance  # strength 1 closes at least half the gap
    # Toward the style it learned (sepia), not toward the other held-out style (blueprint).
    other = demo_dataset.style_pictures(demo_dataset.OTHER_STYLE)
    other_distance = [style_distance(paths, other) for paths in images]
    closed = (distance[0] - distance[2]) / distance[0]
    closed_other = (other_distance[0] - other_distance[2]) / other_distance[0]
    assert other_distance[2] > distance[2] and closed_other < closed, (distance, other_distance)

    # The prompt-tag workflow draws the same style through <hypernet:hn_demo_trained:S> alone: its
    # pictures are the training sweep's first-prompt pictures at each strength, file for file.
    assert list(summary["style_sweeps"]) == ["train_hypernetwork", "prompt_tags"]  # training ran first
    tag_sweep = summary["style_sweeps"]["prompt_tags"]
    assert [point["strength"] for point in tag_sweep] == [0.0, 0.5, 1.0]
    first_prompt_nodes = {node_id for node_id, node in train_prompt.items() if node["class_type"] == "SaveImage"
                          and node["inputs"]["filename_prefix"].endswith("_prompt_1")}
    for by_tag, by_hand in zip(tag_sweep, sweep):  # the runner names files <job>_<node id>_<index>
        first_prompt = [p for p in by_hand["images"] if Path(p).name[len("train_hypernetwork_"):].split("_")[0] in first_prompt_nodes]
        assert len(by_tag["images"]) == len(first_prompt) == 2
        for tagged, wired in zip(by_tag["images"], first_prompt):
            with Image.open(tagged) as a, Image.open(wired) as b:
                assert a.tobytes() == b.tobytes(), (tagged, wired)
    tag_distance = [point["style_distance"] for point in tag_sweep]
    assert tag_distance[0] > tag_distance[2], tag_distance  # toward the style through the tag

    # The contact sheet holds every render; the loss graph is ComfyUI's Plot Loss Graph image.
    with Image.open(out / "contact_sheet.png") as sheet:
        rendered = sum(len(job["outputs"]) for job in jobs.values()) - 1  # minus the loss graph
        assert sheet.format == "PNG" and sheet.width >= 2 * 192 and sheet.height >= len(jobs) * 192
        assert rendered >= 4
    with Image.open(out / "loss_graph.png") as graph:
        assert graph.format == "PNG" and graph.size[0] > 400
    assert f"everything is in {out}" in log

    # The server is gone: no process, nothing listening on its port.
    pid, port = summary["server"]["pid"], summary["server"]["port"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    # The ComfyUI tree was only read.
    assert files_written_since(comfy_root, started) == []

    # Run again: the manifest says every job is done, so nothing is redone and nothing is lost.
    before = {p.name: p.stat().st_mtime for p in (out / "images").glob("*.png")}
    proc, again = run_main_job(out, cache_dir)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert all(job["status"] == "skipped" for job in again["jobs"])
    assert {p.name: p.stat().st_mtime for p in (out / "images").glob("*.png")} == before
