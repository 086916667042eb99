"""A failing workflow is reported with ComfyUI's own account: the node, its type, the exception."""
from __future__ import annotations

import copy
import json

import pytest

from tools.layout import REPO_ROOT
from tools.prompts import run_workflow, substitute_models

pytestmark = pytest.mark.e2e

WORKFLOW = REPO_ROOT / "workflows" / "api" / "apply_hypernetwork.json"


@pytest.fixture
def prompt(default_checkpoint) -> dict:
    return substitute_models(json.loads(WORKFLOW.read_text()), default_checkpoint.name, "hn_demo.pt", set())


def test_refused_workflow_names_the_node_and_input(e2e_server, prompt):
    server, base = e2e_server
    prompt = copy.deepcopy(prompt)
    prompt["7"]["inputs"]["sampler_name"] = "no_such_sampler"
    result = run_workflow(server, "refused", prompt, base.output, timeout=60)
    assert not result.ok and result.outputs == []
    assert "refused" in result.error.splitlines()[0] and "node 7 (KSampler)" in result.error and "sampler_name" in result.error


def test_execution_error_names_the_node_and_exception(e2e_server, prompt):
    server, base = e2e_server
    (base.hypernetworks / "broken.pt").write_bytes(b"this is not a pickle")
    prompt = copy.deepcopy(prompt)
    prompt["2"]["inputs"]["hypernetwork_name"] = "broken.pt"
    result = run_workflow(server, "broken", prompt, base.output, timeout=300)
    assert not result.ok
    assert result.error.startswith("node 2 (LoadHypernetwork) failed: ")
    assert "broken.pt" in result.error.splitlines()[0]
