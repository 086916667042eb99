"""The headless ComfyUI the runner starts when it is given no server: the host at ``COMFYUI_PATH``
(else the pinned ``.host/ComfyUI``), in a temporary base directory with this pack in
``custom_nodes/`` and the caller's files linked in, on 127.0.0.1 on a free port.

    with embedded_server(checkpoints=[ckpt], hypernetworks=[hn], input_dir=images) as server:
        run_batch(jobs, [server.url], output)

The server is stopped and the base directory removed on leaving the block (also on Ctrl-C); if
the runner is killed outright, the kernel kills the server (``parent_death``).
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from .base_dir import PACK_DIR, link_into, prepare_base_dir
from .errors import BatchError
from .server_process import ComfyServer

log = logging.getLogger(__name__)

# Shared with the main job and the end-to-end tests: ComfyUI's bytecode, compiled once per machine.
DEFAULT_PYCACHE = PACK_DIR / "out" / "cache" / "pycache"


def find_comfyui(explicit: Path | None = None) -> Path:
    """The ComfyUI tree to run: ``explicit``, else ``$COMFYUI_PATH``, else ``.host/ComfyUI``."""
    root = explicit or Path(os.environ.get("COMFYUI_PATH") or PACK_DIR / ".host" / "ComfyUI")
    root = Path(root).expanduser().resolve()
    if not (root / "main.py").is_file():
        raise BatchError(f"no ComfyUI at {root}: run scripts/provision_host.sh, set COMFYUI_PATH, or give --server")
    return root


@contextmanager
def embedded_server(*, comfy_root: Path | None = None, checkpoints: Iterable[Path] = (),
                    hypernetworks: Iterable[Path] = (), input_dir: Path | None = None,
                    log_path: Path | None = None, extra_args: Iterable[str] = (),
                    pycache_dir: Path | None = DEFAULT_PYCACHE, base_root: Path | None = None) -> Iterator[ComfyServer]:
    """A started ComfyServer with the given model files and input folder linked into its base directory.

    ``base_root``: keep the base directory there (what the server saved, e.g. a trained hypernetwork
    in ``server.base.hypernetworks``, outlives the server) instead of a temporary one.
    """
    root = find_comfyui(comfy_root)
    for path in [*checkpoints, *hypernetworks, *([input_dir] if input_dir else [])]:
        if not Path(path).exists():
            raise BatchError(f"{path} does not exist")
    temp = None if base_root is not None else Path(tempfile.mkdtemp(prefix="hn-batch-comfyui-"))
    try:
        base = prepare_base_dir(base_root if temp is None else temp / "base", input_dir=input_dir)
        for path in checkpoints:
            link_into(base.checkpoints / Path(path).name, Path(path))
        for path in hypernetworks:
            link_into(base.hypernetworks / Path(path).name, Path(path))
        server = ComfyServer(root, base, log_path or base.root / "comfyui.log", extra_args=list(extra_args),
                             pycache_dir=pycache_dir)
        log.info("starting the embedded ComfyUI (%s) in %s", root, base.root)
        with server:
            yield server
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
