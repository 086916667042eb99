"""End-to-end fixtures: a real ComfyUI server on 127.0.0.1 with this pack and the default model.

Everything heavy is shared by the session: the embedded default checkpoint (generated once per
machine into ``out/cache``, exactly as the main job caches it) and one server for the tests that
queue prompts. The server runs with ``--disable-metadata`` so that a PNG's bytes depend only on
its pixels. Nothing here imports ComfyUI into the pytest process (the in-process host tests need
it to themselves); ComfyUI only ever runs in subprocesses.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `tools` lives at the repository root
    sys.path.append(str(REPO_ROOT))

from batch_runner.server_process import server_env  # noqa: E402
from tools import default_model  # noqa: E402
from tools.layout import DEFAULT_CACHE  # noqa: E402
from tests.e2e.servers import served  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: runs a real ComfyUI server subprocess (minutes; deselect with -m 'not e2e')")


@pytest.fixture(scope="session")
def comfy_root() -> Path:
    root = Path(os.environ.get("COMFYUI_PATH") or REPO_ROOT / ".host" / "ComfyUI").resolve()
    assert (root / "main.py").is_file(), f"no ComfyUI at {root}: run scripts/provision_host.sh"
    return root


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    # The main job's own cache, so a machine generates the default model once for both.
    return Path(os.environ.get("HN_E2E_CACHE") or DEFAULT_CACHE)


@pytest.fixture(scope="session")
def default_checkpoint(comfy_root, cache_dir) -> Path:
    path, _ = default_model.ensure_default_model(comfy_root, cache_dir, env=server_env(cache_dir / "pycache"))
    return path


@pytest.fixture(scope="session")
def e2e_server(comfy_root, cache_dir, default_checkpoint, tmp_path_factory):
    """``(server, base)``: ComfyUI with the default checkpoint and the demo hypernetwork."""
    with served(comfy_root, cache_dir, default_checkpoint, tmp_path_factory.mktemp("e2e-server")) as started:
        yield started


@pytest.fixture(scope="session")
def object_info(e2e_server) -> dict:
    server, _ = e2e_server
    return server.get_json("/object_info", timeout=120)
