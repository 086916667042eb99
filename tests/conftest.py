"""Shared fixtures: a real in-process ComfyUI and random-weight SD UNets to patch.

Unit tests of ``hn_core`` need none of this: nothing here imports comfy (or torch) until a test
asks for one of the host fixtures. Tests that use them are marked automatically:

* ``host`` - uses the in-process ComfyUI (deselect with ``-m "not host"`` where there is none);
* ``slow`` - uses a full-size SD1.5 / SD2 / SDXL UNet (seconds to build, gigabytes to hold);
* ``comfy`` - runs ComfyUI code: ``host``, ``e2e`` (a ComfyUI server) or marked by hand. The
  rest test hn_core alone, so ``.ci/run`` runs only ``-m comfy`` on its second ComfyUI host.

Under ``pytest-xdist`` (``HN_TEST_WORKERS=N scripts/test.sh``) every test gets an ``xdist_group``:
the full-size-UNet tests share one worker (one 10 GB UNet at a time), the tests of the shared e2e
server share one (one server to start), and every other test file is a group of its own (its module
fixtures are built once). Two workers still need more than 24 GB, so one process is the default.

Model fixtures hand each test its own ``ModelPatcher.clone()`` of a model built once per session,
so patches a test adds never leak into the next test (the weights themselves are shared: a test
must not modify them, which is also what ComfyUI asks of every node).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.host import comfy_host as _comfy_host

_HOST_FIXTURES = {"comfy_host", "hypernetwork_dir", "tiny_model", "sd15_model", "sd2_model", "sdxl_model"}
_SLOW_ORDER = ("sd15_model", "sd2_model", "sdxl_model")
_SLOW_FIXTURES = set(_SLOW_ORDER)


def pytest_configure(config):
    # Under xdist each worker keeps to its share of the cores, and so do the ComfyUI servers it
    # starts (they inherit the variable). Set before torch is first imported, which reads it then.
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, (os.cpu_count() or 1) // int(workers))
        os.environ["OMP_NUM_THREADS"] = str(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)


# tryfirst: xdist reads the groups in its own hook of this name, so they must be set before it runs.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # Mark by fixture use, so `-m "not slow"` / `-m "not host"` need no decorator discipline.
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & _HOST_FIXTURES:
            item.add_marker(pytest.mark.host)
        if used & _HOST_FIXTURES or item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.comfy)
        if used & _SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
        item.add_marker(pytest.mark.xdist_group(_worker_group(item)))
    # Fast tests first; then the full-size-model tests grouped per model, because the model cache
    # holds one full-size UNet at a time (tests/host/models.py). Stable: file order is kept otherwise.
    items.sort(key=_big_model_rank)
    _keep_pytest_away_from_the_pack_init(items)


def _worker_group(item) -> str:
    """The xdist group of a test: tests that share an expensive session fixture run on one worker."""
    used = set(getattr(item, "fixturenames", ()))
    if used & _SLOW_FIXTURES:
        return "full-size-unets"
    if "e2e_server" in used:
        return "e2e-server"
    return item.nodeid.split("::", 1)[0]


def _big_model_rank(item) -> int:
    used = set(getattr(item, "fixturenames", ()))
    return next((rank for rank, name in enumerate(_SLOW_ORDER, 1) if name in used), 0)


def _keep_pytest_away_from_the_pack_init(items) -> None:
    """Stop pytest importing the repo root's ``__init__.py`` as a test package.

    pytest >= 8 collects a directory holding ``__init__.py`` as a ``Package`` and imports that file
    in ``Package.setup`` (looking for ``setup_module``). Our root ``__init__.py`` is the ComfyUI
    entry point: it needs ComfyUI, and is loaded by ComfyUI's own loader (``comfy_host``), never by
    pytest as a package named after the checkout folder. It holds no test setup, so skip that step.
    """
    repo_root = _comfy_host.REPO_ROOT
    for item in items:
        for node in item.listchain():
            if isinstance(node, pytest.Package) and node.path == repo_root:
                node.setup = _no_setup
                break


def _no_setup() -> None:
    pass


@pytest.fixture(scope="session")
def comfy_host(tmp_path_factory) -> _comfy_host.ComfyHost:
    """The in-process ComfyUI with built-in nodes and this pack loaded (its base dir is a temp dir)."""
    return _comfy_host.start(base_dir=tmp_path_factory.mktemp("comfy-base"))


@pytest.fixture(scope="session")
def hypernetwork_dir(comfy_host) -> Path:
    """The folder ``folder_paths`` lists first for ``hypernetworks`` (a session temp dir)."""
    return comfy_host.model_dir("hypernetworks")


@pytest.fixture
def tiny_model(comfy_host):
    """Tiny SD1-like UNet: context 768, attn1 widths 32/64/128 (``models.TINY_SD1_UNET``)."""
    from tests.host import models

    return models.tiny_sd1().clone()


@pytest.fixture
def sd15_model(comfy_host):
    """SD1.5 UNet shapes: attn1 320/640/1280, attn2 768."""
    from tests.host import models

    return models.sd15().clone()


@pytest.fixture
def sd2_model(comfy_host):
    """SD2.x UNet shapes: attn1 320/640/1280, attn2 1024."""
    from tests.host import models

    return models.sd2().clone()


@pytest.fixture
def sdxl_model(comfy_host):
    """SDXL base UNet shapes: attn1 640/1280, attn2 2048."""
    from tests.host import models

    return models.sdxl().clone()
