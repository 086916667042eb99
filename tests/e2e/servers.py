"""A real ComfyUI server for the end-to-end tests, on a base directory of its own."""
from __future__ import annotations

import contextlib
from pathlib import Path

from batch_runner.base_dir import link_into, prepare_base_dir
from batch_runner.server_process import ComfyServer
from tools.demo_hypernetwork import write_demos


@contextlib.contextmanager
def served(comfy_root: Path, cache_dir: Path, checkpoint: Path, out: Path, extra_args: tuple[str, ...] = ()):
    """A ComfyUI server on a fresh base directory under ``out`` with ``checkpoint`` and the demo
    hypernetworks in place; yields ``(server, base)`` and stops the server afterwards."""
    base = prepare_base_dir(out / "base")
    link_into(base.checkpoints / checkpoint.name, checkpoint)
    write_demos(base.hypernetworks)
    server = ComfyServer(comfy_root, base, out / "comfyui.log", extra_args=["--disable-metadata", *extra_args],
                         pycache_dir=cache_dir / "pycache")
    with server:
        yield server, base
