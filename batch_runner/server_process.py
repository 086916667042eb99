"""A headless ComfyUI server on 127.0.0.1, run as a subprocess of ours.

    with ComfyServer(comfy_root, base_dir, log_path=...) as server:
        server.get_json("/object_info")

The server runs ``main.py`` of the given ComfyUI tree with ``--base-directory`` (and the database
inside it), so nothing is written into the ComfyUI tree; Python's bytecode goes to a separate
cache folder for the same reason. Stopping is always done (context manager), and escalates from
Ctrl+C (ComfyUI's clean shutdown) to SIGTERM to SIGKILL on the server's own process group. If our
process is killed outright, the kernel kills the server too (``parent_death``).
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .base_dir import PACK_DIR, BaseDir
from .errors import ServerError
from .parent_death import die_with_parent_preexec
from .sync_http import request_json

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def server_env(pycache_dir: Path | None) -> dict[str, str]:
    """The environment for ComfyUI: this pack off PYTHONPATH (our ``nodes/`` package must not be
    importable beside ComfyUI's ``nodes.py``), bytecode kept out of the ComfyUI tree."""
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
             if p and Path(p).resolve() != PACK_DIR]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    else:
        env.pop("PYTHONPATH", None)
    if pycache_dir is not None:
        env["PYTHONPYCACHEPREFIX"] = str(pycache_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cuda_available() -> bool:
    import torch  # here, not at import time: the batch runner must start without torch

    return torch.cuda.is_available()


class ComfyServer:
    def __init__(self, comfy_root: Path, base: BaseDir, log_path: Path, *, port: int | None = None,
                 extra_args: list[str] | None = None, pycache_dir: Path | None = None,
                 start_timeout: float = 600.0):
        self.comfy_root = Path(comfy_root).resolve()
        self.base = base
        self.log_path = Path(log_path)
        self.port = port or free_port()
        self.extra_args = list(extra_args or [])
        self.pycache_dir = pycache_dir
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.startup_seconds: float | None = None
        self._launched_at = 0.0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        cmd = [sys.executable, "main.py", "--listen", HOST, "--port", str(self.port),
               "--base-directory", str(self.base.root), "--database-url", self.base.database_url,
               "--disable-auto-launch"]
        if "--cpu" not in self.extra_args and not cuda_available():
            cmd.append("--cpu")
        return cmd + self.extra_args

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "ComfyServer":
        """Launch the server and wait until it answers."""
        self.launch()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self) -> None:
        """Start the process without waiting for it (several servers can then boot side by side)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        log.info("starting ComfyUI: %s (in %s; log %s)", " ".join(cmd), self.comfy_root, self.log_path)
        self._launched_at = time.perf_counter()
        with open(self.log_path, "ab") as log_file:
            # Own process group, so stop() reaches anything the server spawns and nothing else.
            self.process = subprocess.Popen(cmd, cwd=self.comfy_root, env=server_env(self.pycache_dir),
                                            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, preexec_fn=die_with_parent_preexec())
        log.info("ComfyUI server pid %d, %s", self.process.pid, self.url)

    def wait_ready(self) -> None:
        """Wait until the launched server answers /system_stats; ServerError if it dies or times out."""
        t0 = self._launched_at
        while True:
            self.check_alive()
            try:
                self.get_json("/system_stats", timeout=5)
                break
            except (OSError, ServerError):
                pass
            if time.perf_counter() - t0 > self.start_timeout:
                raise ServerError(f"ComfyUI did not answer /system_stats within {self.start_timeout:.0f} s\n"
                                  + self.log_tail())
            time.sleep(0.5)
        self.startup_seconds = time.perf_counter() - t0
        log.info("ComfyUI at %s ready after %.1f s", self.url, self.startup_seconds)

    def check_alive(self) -> None:
        if self.process is None:
            raise ServerError("the ComfyUI server is not running")
        code = self.process.poll()
        if code is not None:
            raise ServerError(f"the ComfyUI server exited with code {code}\n" + self.log_tail())

    def stop(self, grace: float = 15.0) -> None:
        """Stop the server and everything in its process group; safe to call twice."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                log.warning("ComfyUI (pid %d) still running after %s; escalating", proc.pid, sig.name)
        log.info("ComfyUI server pid %d stopped (exit code %s)", proc.pid, proc.poll())

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return f"--- last {min(lines, len(text))} lines of {self.log_path} ---\n" + "\n".join(text[-lines:])

    # -- HTTP ------------------------------------------------------------------------------------

    def request(self, method: str, path: str, payload=None, timeout: float = 30.0):
        return request_json(method, self.url + path, payload, timeout)

    def get_json(self, path: str, timeout: float = 30.0):
        return self.request("GET", path, timeout=timeout)

    def post_json(self, path: str, payload, timeout: float = 30.0):
        return self.request("POST", path, payload, timeout=timeout)
