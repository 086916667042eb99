"""Helpers for the batch tests: servers, core-node workflows, the runner as a subprocess."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from batch_runner import ComfyServer, find_comfyui, prepare_base_dir
from batch_runner.embedded_server import DEFAULT_PYCACHE
from batch_runner.sync_http import request_json

REPO_ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The test-only node HNTestGate (custom_nodes/hn_test_gate): holds a job until the test lets it through.
GATE_NODES = Path(__file__).resolve().parent / "custom_nodes"


def gate_node_args(folder: Path) -> list[str]:
    """Arguments of ComfyUI's main.py that load HNTestGate: an extra_model_paths.yaml in ``folder``
    naming ``custom_nodes/`` as a custom node folder."""
    config = Path(folder) / "hn_test_gate_paths.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"hn_test_gate:\n    custom_nodes: {GATE_NODES}\n")
    return ["--extra-model-paths-config", str(config)]


class Gate:
    """A folder that decides when gated jobs may finish (see ``custom_nodes/hn_test_gate``).

    Jobs wait at the gate until the test hands out tickets (one job each) or opens it, so a test
    can kill or interrupt something while a job is certainly running, on a machine of any speed.
    The server must have been started with ``gate_node_args``.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._tickets = 0

    def let_through(self, jobs: int) -> None:
        for _ in range(jobs):
            self._tickets += 1
            (self.folder / f"ticket-{self._tickets:04d}").touch()

    def open(self) -> None:
        (self.folder / "open").touch()

    def waiting(self) -> int:
        """How many jobs wait at the gate now."""
        return len(list(self.folder.glob("waiting-*")))

    def forget_waiting(self) -> None:
        """Drop the marks of jobs whose server was killed while they waited."""
        for marker in self.folder.glob("waiting-*"):
            marker.unlink(missing_ok=True)


def gated(workflow: dict, gate: Gate, before: str = "3") -> dict:
    """``workflow`` with an HNTestGate in front of node ``before`` (its ``images`` input)."""
    workflow = json.loads(json.dumps(workflow))
    workflow["90"] = {"class_type": "HNTestGate",
                      "inputs": {"image": workflow[before]["inputs"]["images"], "gate": str(gate.folder)}}
    workflow[before]["inputs"]["images"] = ["90", 0]
    return workflow


@contextmanager
def servers(tmp: Path, count: int):
    """``count`` ComfyUI servers, booted side by side, stopped on exit. They know HNTestGate."""
    root = find_comfyui()
    with ExitStack() as stack:
        started = []
        for i in range(count):
            base = prepare_base_dir(tmp / f"server{i}" / "base")
            server = ComfyServer(root, base, tmp / f"server{i}" / "comfyui.log",
                                 extra_args=["--disable-metadata", *gate_node_args(tmp)],
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
    return [sys.executable, "-m", "batch_runner", "--no-progress", *map(str, args)]


def run_runner(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(runner_command(*args), cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                          env=runner_env())


def start_runner(*args, log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen(runner_command(*args), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env=runner_env(), preexec_fn=_default_sigint)


def _default_sigint() -> None:
    # A suite started in the background (`pytest ... &` in a script) ignores SIGINT, and a child
    # inherits that: its Ctrl-C test would then wait forever. The runner gets Python's default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
