"""Each UI-format workflow and its API-format twin describe the same graph, so they cannot drift.

The UI form is converted to the API form the way ComfyUI's frontend does it, using the node
definitions the running server reports (widget order, seed control values).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.layout import REPO_ROOT
from tools.workflow_format import WorkflowFormatError, api_graph, check_ui_workflow, ui_to_api

pytestmark = pytest.mark.e2e

WORKFLOWS = REPO_ROOT / "workflows"
UI_WORKFLOWS = sorted(WORKFLOWS.glob("*.json"))


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_every_ui_workflow_has_an_api_twin_and_back():
    ui_names = {p.stem for p in UI_WORKFLOWS}
    api_names = {p.stem for p in (WORKFLOWS / "api").glob("*.json")}
    assert {"apply_hypernetwork", "stack_hypernetworks", "train_hypernetwork"} <= ui_names
    assert ui_names == api_names


@pytest.mark.parametrize("ui_path", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_ui_workflow_matches_api_twin(ui_path: Path, object_info):
    ui = load_json(ui_path)
    check_ui_workflow(ui)
    api = load_json(WORKFLOWS / "api" / ui_path.name)
    assert ui_to_api(ui, object_info) == api_graph(api)


@pytest.mark.parametrize("ui_path", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_save_image_prefix_names_the_workflow(ui_path: Path):
    api = load_json(WORKFLOWS / "api" / ui_path.name)
    prefixes = [n["inputs"]["filename_prefix"] for n in api.values() if n["class_type"] == "SaveImage"]
    assert prefixes and all(p.startswith(ui_path.stem) for p in prefixes)


def test_template_browser_offers_only_ui_workflows(e2e_server):
    server, _ = e2e_server
    templates = server.get_json("/workflow_templates")
    assert sorted(templates.get("comfyui-hypernetworks", [])) == sorted(p.stem for p in UI_WORKFLOWS)


def test_comparison_notices_drift(object_info):
    # A twin test that cannot fail protects nothing: change one widget and one link.
    ui = load_json(WORKFLOWS / "apply_hypernetwork.json")
    api = api_graph(load_json(WORKFLOWS / "api" / "apply_hypernetwork.json"))
    sampler = next(n for n in ui["nodes"] if n["type"] == "KSampler")
    sampler["widgets_values"][2] += 1  # steps (after seed and its control value)
    assert ui_to_api(ui, object_info) != api
    sampler["widgets_values"][2] -= 1
    assert ui_to_api(ui, object_info) == api
    # A link edited at one end only is caught as a malformed workflow.
    link = next(link for link in ui["links"] if link[5] == "MODEL" and link[3] == sampler["id"])
    link[1] = 1
    with pytest.raises(WorkflowFormatError, match="both of its ends"):
        ui_to_api(ui, object_info)
