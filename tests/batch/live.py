"""Helpers for the batch tests: servers, core-node workflows, the runner as a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from hn_core.batch import ComfyServer, find_comfyui, prepare_base_dir
from hn_core.batch.embedded_server import DEFAULT_PYCACHE
from hn_core.batch.sync_http import request_json

REPO_ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A blur over this many pixels takes a few seconds here: long enough to kill something mid-job.
SLOW_SIZE = 640


@contextmanager
def servers(tmp: Path, count: int):
    """``count`` ComfyUI servers, booted side by side, stopped on exit."""
    root = find_comfyui()
    with ExitStack() as stack:
        started = []
        for i in range(count):
            base = prepare_base_dir(tmp / f"server{i}" / "base")
            server = ComfyServer(root, base, tmp / f"server{i}" / "comfyui.log", extra_args=["--disable-metadata"],
                                 pycache_dir=DEFAULT_PYCACHE)
            stack.callback(server.stop)
            server.launch()
            started.append(server)
        for server in started:
            server.wait_ready()
        yield started


def blur_workflow(size: int = 64, radius: int = 2) -> dict:
    """EmptyImage -> ImageBlur -> SaveImage; ``color`` makes otherwise equal jobs differ."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1, "color": 0},
              "_meta": {"title": "Canvas"}},
        "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": radius, "sigma": 4.0}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "batch"}},
    }


def load_image_workflow(image: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 31, "sigma": 10.0}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "batch"}},
    }


def write_workflow(folder: Path, name: str, workflow: dict) -> Path:
    path = folder / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(workflow))
    return path


def runner_command(*args) -> list[str]:
    return [sys.executable, "-m", "hn_core.batch", "--no-progress", *map(str, args)]


def run_runner(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(runner_command(*args), cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                          env=runner_env())


def start_runner(*args, log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen(runner_command(*args), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env=runner_env())


def runner_env() -> dict:
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    return env


def manifest_jobs(output: Path) -> dict:
    try:
        return json.loads((output / "manifest.json").read_text())["jobs"]
    except (OSError, ValueError, KeyError):
        return {}


def wait_until(condition, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def history_ids(server: ComfyServer) -> set[str]:
    return set(request_json("GET", server.url + "/history?max_items=100000"))


def running_prompt(server: ComfyServer) -> str | None:
    queue = request_json("GET", server.url + "/queue")
    running = queue.get("queue_running") or []
    return running[0][1] if running else None


def assert_png(path: Path) -> None:
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
