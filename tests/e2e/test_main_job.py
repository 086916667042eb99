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

from tools.layout import REPO_ROOT

pytestmark = pytest.mark.e2e


def files_written_since(root: Path, since: float) -> list[Path]:
    # Bytecode aside (the job redirects its own; other Python processes may not), nothing else.
    return [p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
            and p.stat().st_mtime >= since]


def test_main_job_runs_the_shipped_workflows(tmp_path, comfy_root, cache_dir, default_checkpoint):
    out = tmp_path / "main_job"
    started = time.time()
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "run_main_job.sh"), "--output", str(out), "--cache", str(cache_dir)],
        capture_output=True, text=True, timeout=1200,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] and summary["default_model"]["path"] == str(default_checkpoint)
    [result] = [w for w in summary["workflows"] if w["name"] == "apply_hypernetwork"]
    [png] = [Path(p) for p in result["outputs"]]
    assert png.parent == out / "base" / "output" and png.name.startswith("apply_hypernetwork")
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (256, 256) and image.mode == "RGB"
    assert "summary:" in log and "apply_hypernetwork" in log

    # The server is gone: no process, nothing listening on its port.
    pid, port = summary["server"]["pid"], summary["server"]["port"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    # The ComfyUI tree was only read.
    assert files_written_since(comfy_root, started) == []
