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
from tests.e2e import frontends  # noqa: E402
from tests.e2e.frontend_page import FrontendPage, chromium_path  # noqa: E402
from tools.demo_dataset import install_into  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402


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


# The real frontend in headless Chromium (test_frontend, test_a1111_png_import): each module gets its own.
@pytest.fixture(scope="module", params=["pinned", "newest"])
def frontend(request, e2e_server, comfy_root, cache_dir, default_checkpoint, tmp_path_factory):
    """``(Frontend, server)``: the pinned frontend on the e2e server, or the newest one on a second
    server started with ``--front-end-root``; what the workflows select is in place, and the
    first-run template browser (it opens over the canvas of a fresh user) is switched off."""
    if request.param == "pinned":
        server, base = e2e_server
        yield frontends.pinned(), _ready(server, base)
        return
    newest = frontends.newest()
    if newest is None:
        pytest.skip(frontends.install_hint())
    out = tmp_path_factory.mktemp("newest-frontend")
    with served(comfy_root, cache_dir, default_checkpoint, out,
                ("--front-end-root", str(newest.static_dir))) as (server, base):
        yield newest, _ready(server, base)


def _ready(server, base):
    install_into(base.input)
    server.post_json("/settings/Comfy.TutorialCompleted", True)
    return server


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, frontend):
    page = FrontendPage(browser, frontend[1].url)
    page.open()
    yield page
    page.close()
