"""TrainHypernetwork inside a real ComfyUI prompt: validated and run by ComfyUI's own executor,
fed per-image lists the way dataset nodes feed them, saved, and drawn by Plot Loss Graph."""
from __future__ import annotations

import asyncio
import collections
import uuid
from pathlib import Path

import pytest
import torch

from tests.training import comfy_training as ct
from tests.training.source_nodes import source_node


class _Server:
    """What PromptExecutor needs from ComfyUI's server: somewhere to send messages."""

    client_id = None
    last_node_id = None

    def __init__(self):
        self.messages = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data))


def _execute(prompt: dict):
    """Validate and run `prompt` as ComfyUI's prompt worker does; returns the finished executor.

    Classic caching, and every headroom the executor reads from ``cache_args`` set to 0 (no RAM
    pressure cache): which keys it reads depends on the version (0.33 added ``ram_inactive``), so
    none is named here.
    """
    import execution

    prompt_id = str(uuid.uuid4())
    valid, error, outputs, node_errors = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
    assert valid, (error, node_errors)
    server = _Server()
    executor = execution.PromptExecutor(server, cache_type=execution.CacheType.CLASSIC,
                                        cache_args=collections.defaultdict(int))
    executor.execute(prompt, prompt_id, {}, outputs)
    assert executor.success, [m for m in server.messages if m[0] == "execution_error"]
    return executor


TinyModelSource = source_node("MODEL", lambda: ct.loader_built("sd1"), "Test-only stand-in for a checkpoint "
                              "loader: the tiny SD1 UNet, built under inference mode.")


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


TinyVAESource = source_node("VAE", ct.tiny_vae, "Test-only stand-in for a VAE loader: ComfyUI's own VAE "
                            "class (AutoencoderKL, 8x downscale, 4 latent channels like SD1's), tiny, random weights.")


class CaptionEncoder:
    """Test-only stand-in for CLIP Text Encode (no text encoder weights exist here): one
    768-wide CONDITIONING per caption, the same for the same text."""

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"forceInput": True})}}

    def encode(self, text):
        seed = sum(text.encode()) * 7919 + len(text)
        return ([[torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(seed)), {}]],)


@pytest.fixture
def test_nodes(comfy_host):
    mappings = comfy_host.nodes.NODE_CLASS_MAPPINGS
    added = {"HNTestTinyModel": TinyModelSource, "HNTestImageList": ImageListSource,
             "HNTestTinyVAE": TinyVAESource, "HNTestCaptionEncoder": CaptionEncoder}
    mappings.update(added)
    yield
    for name in added:
        mappings.pop(name)


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
    widgets = {**ct.widget_defaults(comfy_host.node_class("TrainHypernetwork")),
               "steps": 4, "dims": "64, 768", "learning_rate": "1e-3", "name": "from_graph"}
    executor = _execute(_prompt(widgets))
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


def test_a_folder_dataset_through_comfyuis_dataset_loader_and_vae_encode(comfy_host, test_nodes, hypernetwork_dir):
    """Images and captions from a folder (ComfyUI's Load Image and Text Dataset from Folder), each
    image VAE-encoded by ComfyUI's VAE Encode over the list: TrainHypernetwork takes the lists."""
    import folder_paths
    from PIL import Image

    folder = Path(folder_paths.get_input_directory()) / "hn_dataset"
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(5)
    for index, caption in enumerate(["a red square", "a blue circle", "a green line"]):
        pixels = (torch.rand(64, 64, 3, generator=generator) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"image{index}.png")
        (folder / f"image{index}.txt").write_text(caption)

    widgets = {**ct.widget_defaults(comfy_host.node_class("TrainHypernetwork")),
               "steps": 3, "dims": "auto", "learning_rate": "1e-3", "name": "from_folder"}
    prompt = {
        "1": {"class_type": "HNTestTinyModel", "inputs": {}},
        "2": {"class_type": "LoadImageTextDataSetFromFolder", "inputs": {"folder": "hn_dataset"}},
        "3": {"class_type": "HNTestTinyVAE", "inputs": {}},
        "4": {"class_type": "VAEEncode", "inputs": {"pixels": ["2", 0], "vae": ["3", 0]}},
        "5": {"class_type": "HNTestCaptionEncoder", "inputs": {"text": ["2", 1]}},
        "6": {"class_type": "TrainHypernetwork", "inputs": {
            "model": ["1", 0], "latents": ["4", 0], "conditioning": ["5", 0], **widgets}},
        "7": {"class_type": "SaveHypernetwork", "inputs": {
            "hypernetwork": ["6", 1], "filename": "from_folder", "format": "pt (A1111)", "overwrite": False}},
    }
    executor = _execute(prompt)
    assert executor.history_result["outputs"]["7"]["text"] == ["from_folder.pt"]
    network = comfy_host.pack_module("hn_core").load_hypernetwork(hypernetwork_dir / "from_folder.pt")
    assert network.info.step == 3
    assert set(network.dims) == {32, 64, 128, 768}  # "auto": every width the tiny SD1 UNet attends with
