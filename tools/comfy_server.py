"""A headless ComfyUI server on 127.0.0.1, started as a subprocess, and a small HTTP client for it.

    with ComfyServer(comfy_root, base_dir, log_path=...) as server:
        server.get_json("/object_info")

The server runs ``main.py`` of the given ComfyUI tree with ``--base-directory`` (and the database
inside it), so nothing is written into the ComfyUI tree; Python's bytecode goes to a separate
cache folder for the same reason. Stopping is always done (context manager), and escalates from
Ctrl+C (ComfyUI's clean shutdown) to SIGTERM to SIGKILL on the server's own process group.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .layout import REPO_ROOT, BaseDir

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
# Never route loopback requests through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerError(RuntimeError):
    """The server did not start, died, or answered with an error."""


class HttpError(ServerError):
    def __init__(self, status: int, body: str, url: str):
        super().__init__(f"HTTP {status} from {url}: {body[:2000]}")
        self.status, self.body, self.url = status, body, url

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def server_env(pycache_dir: Path | None) -> dict[str, str]:
    """The environment for ComfyUI: this repository off PYTHONPATH (our ``nodes/`` package must not
    be importable beside ComfyUI's ``nodes.py``), bytecode kept out of the ComfyUI tree."""
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
             if p and Path(p).resolve() != REPO_ROOT]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    else:
        env.pop("PYTHONPATH", None)
    if pycache_dir is not None:
        env["PYTHONPYCACHEPREFIX"] = str(pycache_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cuda_available() -> bool:
    import torch

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
        if not cuda_available():
            cmd.append("--cpu")
        return cmd + self.extra_args

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "ComfyServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        log.info("starting ComfyUI: %s (in %s; log %s)", " ".join(cmd), self.comfy_root, self.log_path)
        t0 = time.perf_counter()
        with open(self.log_path, "ab") as log_file:
            # Own process group, so stop() reaches anything the server spawns and nothing else.
            self.process = subprocess.Popen(cmd, cwd=self.comfy_root, env=server_env(self.pycache_dir),
                                            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        log.info("ComfyUI server pid %d, %s", self.process.pid, self.url)
        try:
            self._wait_ready(t0)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.perf_counter() - t0
        log.info("ComfyUI ready after %.1f s", self.startup_seconds)
        return self

    def _wait_ready(self, t0: float) -> None:
        while True:
            self.check_alive()
            try:
                self.get_json("/system_stats", timeout=5)
                return
            except (OSError, ServerError):
                pass
            if time.perf_counter() - t0 > self.start_timeout:
                raise ServerError(f"ComfyUI did not answer /system_stats within {self.start_timeout:.0f} s\n"
                                  + self.log_tail())
            time.sleep(0.5)

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
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as e:
            raise HttpError(e.code, e.read().decode(errors="replace"), self.url + path) from None
        return json.loads(body) if body else None

    def get_json(self, path: str, timeout: float = 30.0):
        return self.request("GET", path, timeout=timeout)

    def post_json(self, path: str, payload, timeout: float = 30.0):
        return self.request("POST", path, payload, timeout=timeout)
