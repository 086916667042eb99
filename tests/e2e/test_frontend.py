"""Every UI workflow opens cleanly in the real ComfyUI web frontend, in headless Chromium.

Twice: in the ``comfyui-frontend-package`` the host pins (1.32.9 on ComfyUI 0.3.75, 1.49.6 on
0.33) and in the newest one (1.58.x; see tests/e2e/frontends.py), each served by a real ComfyUI.
The browser is Debian's ``chromium``, driven with Playwright. For each ``workflows/*.json``: no
dialog, warning or error card (the missing-node report above all, and newer frontends' missing
models), no console error, every node a registered type, every widget value one its node allows,
and the pack's nodes on the graph. A screenshot of the loaded graph goes into the test's tmp dir.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from batch_runner.base_dir import PACK_NAME
from tests.e2e.frontend_page import VIEWPORT
from tools.layout import REPO_ROOT

pytestmark = pytest.mark.e2e

UI_WORKFLOWS = sorted((REPO_ROOT / "workflows").glob("*.json"))


@pytest.fixture(scope="module")
def pack_node_types(object_info) -> set[str]:
    return {name for name, spec in object_info.items() if spec.get("python_module", "").endswith(PACK_NAME)}


def test_the_frontend_meant_is_the_one_served(page, frontend):
    assert page.version() == frontend[0].version


@pytest.mark.parametrize("ui_path", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_ui_workflow_loads_cleanly(ui_path: Path, page, pack_node_types, tmp_path):
    workflow = json.loads(ui_path.read_text())
    report = page.load_workflow(workflow, ui_path.stem)
    shot = tmp_path / f"{ui_path.stem}.png"
    page.screenshot(shot)

    assert report.problems == []
    assert len(report.nodes) == len(workflow["nodes"])
    file_pack_nodes = {n["type"] for n in workflow["nodes"]} & pack_node_types
    assert file_pack_nodes, f"{ui_path.name} uses none of the pack's nodes"
    assert file_pack_nodes <= report.node_types
    with Image.open(shot) as image:
        assert image.size == (VIEWPORT["width"], VIEWPORT["height"])
        assert np.asarray(image.convert("L")).std() > 10  # a drawn graph, not a blank canvas


def test_a_broken_workflow_is_reported(page):
    # The checks must be able to fail: an unknown node type and a sampler the server lacks.
    workflow = json.loads((REPO_ROOT / "workflows" / "apply_hypernetwork.json").read_text())
    broken = copy.deepcopy(workflow)
    loader = next(n for n in broken["nodes"] if n["type"] == "LoadHypernetwork")
    loader["type"] = "NoSuchHypernetworkNode"
    sampler = next(n for n in broken["nodes"] if n["type"] == "KSampler")
    sampler["widgets_values"][4] = "no_such_sampler"
    problems = "\n".join(page.load_workflow(broken, "broken").problems)
    # What the user reads: the missing-nodes dialog (1.32), or the card and its error panel (1.49+).
    assert "NoSuchHypernetworkNode" in problems and "missing node" in problems.lower(), problems
    assert "'no_such_sampler' is not one of" in problems
