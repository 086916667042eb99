"""Every shipped API workflow, exactly as shipped (bar the checkpoint placeholder), runs to
completion on a live server: queued through ``/prompt``, finished according to ``/history``,
every Save Image file on disk. The training workflow's hypernetwork is then read back by hn_core.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hn_core import load_hypernetwork
from tools.demo_dataset import DATASET_NAME, install_into
from tools.layout import REPO_ROOT
from tools.prompts import run_prompt, saved_images, substitute_models

pytestmark = pytest.mark.e2e

API_WORKFLOWS = sorted((REPO_ROOT / "workflows" / "api").glob("*.json"))
SD15_WIDTHS = {320, 640, 768, 1280}  # what dims "auto" finds in the default model's attention


@pytest.fixture(scope="module")
def workflow_server(e2e_server):
    server, base = e2e_server
    install_into(base.input)
    return server, base


def run_shipped(workflow_server, default_checkpoint, path: Path) -> tuple[dict, dict, list[Path]]:
    """(prompt as run, its history entry, the saved images)."""
    server, base = workflow_server
    prompt = substitute_models(json.loads(path.read_text()), default_checkpoint.name, "hn_demo.pt", set())
    entry = run_prompt(server, prompt, timeout=1500)
    return prompt, entry, saved_images(entry, prompt, base.output)


def ids_of(prompt: dict, class_type: str) -> list[str]:
    return [node_id for node_id, node in prompt.items() if node["class_type"] == class_type]


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_every_api_workflow_is_covered():
    assert {p.stem for p in API_WORKFLOWS} == {"apply_hypernetwork", "stack_hypernetworks", "train_hypernetwork"}


@pytest.mark.parametrize("path", [p for p in API_WORKFLOWS if p.stem != "train_hypernetwork"], ids=lambda p: p.stem)
def test_render_workflow_runs(workflow_server, default_checkpoint, path):
    prompt, entry, images = run_shipped(workflow_server, default_checkpoint, path)
    latent = prompt[ids_of(prompt, "EmptyLatentImage")[0]]["inputs"]
    assert len(images) == len(ids_of(prompt, "SaveImage"))
    for image in images:
        array = pixels(image)
        assert array.shape == (latent["height"], latent["width"], 3)
        assert array.std() > 1  # an image, not a flat fill
    # Each Load Hypernetwork reported the network it loaded.
    for node_id in ids_of(prompt, "LoadHypernetwork"):
        assert "dims: 320, 640, 768, 1280" in entry["outputs"][node_id]["text"][0]


def test_training_workflow_trains_saves_plots_and_sweeps(workflow_server, default_checkpoint):
    server, base = workflow_server
    assert (base.input / DATASET_NAME).is_dir()
    path = REPO_ROOT / "workflows" / "api" / "train_hypernetwork.json"
    prompt, entry, images = run_shipped(workflow_server, default_checkpoint, path)
    [train_id], [save_id], [plot_id] = (ids_of(prompt, t) for t in ("TrainHypernetwork", "SaveHypernetwork",
                                                                      "LossGraphNode"))
    train = prompt[train_id]["inputs"]

    [saved_name] = entry["outputs"][save_id]["text"]
    saved = base.hypernetworks / saved_name
    assert saved.name.startswith(prompt[save_id]["inputs"]["filename"]) and saved.suffix == ".pt"
    assert Path(f"{saved}.optim").is_file()  # training can resume from it
    network = load_hypernetwork(str(saved))
    assert network.info.step == train["steps"]
    assert set(network.dims) == SD15_WIDTHS
    assert network.config.activation_func == train["activation"] and network.config.is_layer_norm

    [plot] = entry["outputs"][plot_id]["images"]
    assert plot["type"] == "temp" and (base.root / "temp" / plot["subfolder"] / plot["filename"]).is_file()

    by_prefix = {prompt[i]["inputs"]["filename_prefix"]: pixels(base.output / entry["outputs"][i]["images"][0]["filename"])
                 for i in ids_of(prompt, "SaveImage")}
    assert len(images) == len(by_prefix) == 3
    assert sorted(by_prefix) == ["train_hypernetwork_strength_0", "train_hypernetwork_strength_0.5",
                                 "train_hypernetwork_strength_1"]
    without, full = by_prefix["train_hypernetwork_strength_0"], by_prefix["train_hypernetwork_strength_1"]
    assert without.shape == (128, 128, 3)
    assert np.abs(full - without).max() > 0, "the trained hypernetwork changed nothing at strength 1"
