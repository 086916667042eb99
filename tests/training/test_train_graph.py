"""TrainHypernetwork inside a real ComfyUI prompt: validated and run by ComfyUI's own executor,
fed per-image lists the way dataset nodes feed them, saved, and drawn by Plot Loss Graph."""
from __future__ import annotations

import asyncio
import uuid

import pytest
import torch

from tests.training import comfy_training as ct


class _Server:
    """What PromptExecutor needs from ComfyUI's server: somewhere to send messages."""

    client_id = None
    last_node_id = None

    def __init__(self):
        self.messages = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data))


class TinyModelSource:
    """Test-only stand-in for a checkpoint loader: the tiny SD1 UNet, built under inference mode."""

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "make"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def make(self):
        return (ct.loader_built("sd1"),)


class ImageListSource:
    """Test-only stand-in for Load Image and Text Dataset + VAE Encode + CLIP Text Encode:
    one LATENT and one CONDITIONING per image, as output lists."""

    RETURN_TYPES = ("LATENT", "CONDITIONING")
    OUTPUT_IS_LIST = (True, True)
    FUNCTION = "make"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def make(self):
        latents, conditioning = ct.dataset(count=3)
        return latents, conditioning


@pytest.fixture
def test_nodes(comfy_host):
    mappings = comfy_host.nodes.NODE_CLASS_MAPPINGS
    mappings.update({"HNTestTinyModel": TinyModelSource, "HNTestImageList": ImageListSource})
    yield
    mappings.pop("HNTestTinyModel"), mappings.pop("HNTestImageList")


def _prompt(widgets: dict) -> dict:
    return {
        "1": {"class_type": "HNTestTinyModel", "inputs": {}},
        "2": {"class_type": "HNTestImageList", "inputs": {}},
        "3": {"class_type": "TrainHypernetwork", "inputs": {
            "model": ["1", 0], "latents": ["2", 0], "conditioning": ["2", 1], **widgets}},
        "4": {"class_type": "SaveHypernetwork", "inputs": {
            "hypernetwork": ["3", 1], "filename": "from_graph", "format": "pt (A1111)", "overwrite": False}},
        "5": {"class_type": "LossGraphNode", "inputs": {"loss": ["3", 2], "filename_prefix": "from_graph_loss"}},
    }


def test_a_training_graph_runs_in_comfyuis_executor(comfy_host, test_nodes, hypernetwork_dir):
    import execution

    widgets = {**ct.widget_defaults(comfy_host.node_class("TrainHypernetwork")),
               "steps": 4, "dims": "64, 768", "learning_rate": "1e-3", "name": "from_graph"}
    prompt = _prompt(widgets)
    prompt_id = str(uuid.uuid4())
    valid, error, outputs, node_errors = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
    assert valid, (error, node_errors)

    server = _Server()
    executor = execution.PromptExecutor(server, cache_args={"lru": 0, "ram": 0})
    executor.execute(prompt, prompt_id, {}, outputs)
    assert executor.success, [m for m in server.messages if m[0] == "execution_error"]
    assert executor.history_result["outputs"]["4"]["text"] == ["from_graph.pt"]
    assert "images" in executor.history_result["outputs"]["5"]  # Plot Loss Graph drew our LOSS_MAP
    network = comfy_host.pack_module("hn_core").load_hypernetwork(hypernetwork_dir / "from_graph.pt")
    assert network.info.step == 4 and network.info.name == "from_graph"
    assert (hypernetwork_dir / "from_graph.pt.optim").is_file()


def test_validation_rejects_a_training_graph_without_images(comfy_host, test_nodes):
    import execution

    widgets = ct.widget_defaults(comfy_host.node_class("TrainHypernetwork"))
    prompt = _prompt(widgets)
    del prompt["3"]["inputs"]["latents"]
    valid, error, _, node_errors = asyncio.run(execution.validate_prompt("x", prompt, None))
    assert not valid and "3" in node_errors


def test_every_widget_has_a_tooltip(comfy_host):
    for name in ("TrainHypernetwork", "SaveHypernetwork"):
        spec = comfy_host.node_class(name).INPUT_TYPES()
        for section in ("required", "optional"):
            for widget, (kind, *options) in spec.get(section, {}).items():
                assert options and options[0].get("tooltip"), f"{name}.{widget} has no tooltip"
