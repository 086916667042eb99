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
from tools.style_sweep import strength_of

pytestmark = pytest.mark.e2e

API_WORKFLOWS = sorted((REPO_ROOT / "workflows" / "api").glob("*.json"))
DEMO_MODEL_WIDTHS = {320, 768}  # the demo model's attention key widths: self 320, cross 768


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


# Run after the training workflow, whose saved network they name (as the main job orders them).
USES_TRAINED = {"prompt_tags"}


def test_every_api_workflow_is_covered():
    assert {p.stem for p in API_WORKFLOWS} == {"apply_hypernetwork", "stack_hypernetworks", "train_hypernetwork",
                                               *USES_TRAINED}


@pytest.fixture(scope="module")
def training_run(workflow_server, default_checkpoint):
    """The shipped training workflow, run once per server: (prompt, history entry, images)."""
    return run_shipped(workflow_server, default_checkpoint, REPO_ROOT / "workflows" / "api" / "train_hypernetwork.json")


@pytest.mark.parametrize("path", [p for p in API_WORKFLOWS if p.stem not in {"train_hypernetwork", *USES_TRAINED}],
                         ids=lambda p: p.stem)
def test_render_workflow_runs(workflow_server, default_checkpoint, path):
    prompt, entry, images = run_shipped(workflow_server, default_checkpoint, path)
    latent = prompt[ids_of(prompt, "EmptyLatentImage")[0]]["inputs"]
    assert len(images) == len(ids_of(prompt, "SaveImage")) * latent["batch_size"]
    for image in images:
        array = pixels(image)
        assert array.shape == (latent["height"], latent["width"], 3)
        assert array.std() > 1  # an image, not a flat fill
    # Each Load Hypernetwork reported the network it loaded.
    for node_id in ids_of(prompt, "LoadHypernetwork"):
        assert "dims: 320, 640, 768, 1280" in entry["outputs"][node_id]["text"][0]


def test_training_workflow_trains_saves_plots_and_sweeps(workflow_server, training_run):
    server, base = workflow_server
    assert (base.input / DATASET_NAME).is_dir()
    prompt, entry, images = training_run
    [train_id], [save_id], [plot_id] = (ids_of(prompt, t) for t in ("TrainHypernetwork", "SaveHypernetwork",
                                                                      "LossGraphNode"))
    train = prompt[train_id]["inputs"]

    [saved_name] = entry["outputs"][save_id]["text"]
    saved = base.hypernetworks / saved_name
    assert saved.name.startswith(prompt[save_id]["inputs"]["filename"]) and saved.suffix == ".pt"
    assert Path(f"{saved}.optim").is_file()  # training can resume from it
    network = load_hypernetwork(str(saved))
    assert network.info.step == train["steps"]
    assert set(network.dims) == DEMO_MODEL_WIDTHS  # dims 'auto': the demo model's attention widths
    assert network.config.activation_func == train["activation"] and network.config.is_layer_norm

    [plot] = entry["outputs"][plot_id]["images"]
    assert plot["type"] == "temp" and (base.root / "temp" / plot["subfolder"] / plot["filename"]).is_file()

    # The sweep: every strength draws the same prompts with the same seed, and strength 1 differs
    # from strength 0 in every picture (the main job's test measures how: toward the style).
    by_strength: dict[float, list[np.ndarray]] = {}
    for node_id in ids_of(prompt, "SaveImage"):
        files = entry["outputs"][node_id]["images"]
        assert len(files) == 2  # the empty latent's batch of two
        by_strength.setdefault(strength_of(prompt, node_id), []).extend(
            pixels(base.output / f["filename"]) for f in files)
    assert sorted(by_strength) == [0.0, 0.5, 1.0] and len(images) == sum(map(len, by_strength.values()))
    assert all(p.shape == (64, 64, 3) for p in by_strength[0.0])
    for without, full in zip(by_strength[0.0], by_strength[1.0]):
        assert np.abs(full.astype(int) - without).max() > 0, "the trained hypernetwork changed nothing at strength 1"


def saved_by_strength(prompt: dict, entry: dict, base, select=lambda node_id: True) -> dict[float, list[np.ndarray]]:
    """The pictures of each SaveImage node (those ``select`` picks), grouped by the strength that drew them."""
    groups: dict[float, list[np.ndarray]] = {}
    for node_id in filter(select, ids_of(prompt, "SaveImage")):
        groups.setdefault(strength_of(prompt, node_id), []).extend(
            pixels(base.output / f["filename"]) for f in entry["outputs"][node_id]["images"])
    return groups


def test_prompt_tag_workflow_draws_the_training_sweep_through_a_tag(workflow_server, default_checkpoint, training_run):
    # The tag names the trained network and leaves the sweep's first prompt: every picture must be
    # the training sweep's picture at the same strength, bit for bit (tag = Load + Apply by hand).
    server, base = workflow_server
    train_prompt, train_entry, _images = training_run
    prompt, entry, images = run_shipped(workflow_server, default_checkpoint,
                                        REPO_ROOT / "workflows" / "api" / "prompt_tags.json")
    assert len(images) == 2 * len(ids_of(prompt, "SaveImage"))
    by_tag = saved_by_strength(prompt, entry, base)
    first_prompt = {node_id for node_id in ids_of(train_prompt, "SaveImage")
                    if train_prompt[node_id]["inputs"]["filename_prefix"].endswith("_prompt_1")}
    by_hand = saved_by_strength(train_prompt, train_entry, base, first_prompt.__contains__)
    assert sorted(by_tag) == sorted(by_hand) == [0.0, 0.5, 1.0]
    for strength in by_tag:
        assert len(by_tag[strength]) == len(by_hand[strength]) == 2
        for tagged, wired in zip(by_tag[strength], by_hand[strength]):
            assert np.array_equal(tagged, wired), f"strength {strength}: the tag's picture differs from Load + Apply"
