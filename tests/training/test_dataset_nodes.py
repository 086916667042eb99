"""Train Hypernetwork fed by ComfyUI's own training-dataset nodes, in ComfyUI's executor:
Make Training Dataset (VAE + CLIP -> a LATENT and a CONDITIONING per image), Save / Load Training
Dataset, and Resolution Bucket (one LATENT batch per size). Pictures of two sizes, so the latents
differ in size and the trainer must bucket them.

Make / Save / Load Training Dataset exist on both hosts (0.3.75 saves datasets under the output
folder, 0.33 under its datasets folder); Resolution Bucket only in today's ComfyUI (0.33): on the
pinned 0.3.75 its tests skip, saying so, and CI's 0.33 leg runs them.
"""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import torch

from tests.training import comfy_training as ct
from tests.training.test_train_graph import TinyModelSource, TinyVAESource, _execute
from tests.training.tiny_clip import TinyClipSource

# (width, height) of each picture: two sizes, interleaved, so the 8x-downscaled latents are 8x8 and 16x8.
PICTURES = [((64, 64), "red, square"), ((64, 128), "blue, circle, tall"), ((64, 64), "green, line"),
            ((64, 128), "yellow, star, tall"), ((64, 64), "white, dot")]


def _require(host, *names: str) -> None:
    missing = [name for name in names if name not in host.nodes.NODE_CLASS_MAPPINGS]
    if missing:
        import comfyui_version

        pytest.skip(f"ComfyUI {comfyui_version.__version__} has no {', '.join(missing)} (a newer ComfyUI's training "
                    "dataset node); run with COMFYUI_PATH set to a 0.33 host")


@pytest.fixture
def dataset_host(comfy_host):
    _require(comfy_host, "LoadImageTextDataSetFromFolder", "MakeTrainingDataset")
    mappings = comfy_host.nodes.NODE_CLASS_MAPPINGS
    added = {"HNTestTinyModel": TinyModelSource, "HNTestTinyVAE": TinyVAESource, "HNTestTinyCLIP": TinyClipSource}
    mappings.update(added)
    yield comfy_host
    for name in added:
        mappings.pop(name)


@pytest.fixture
def picture_folder(dataset_host):
    """A folder of pictures of two sizes with captions, in ComfyUI's input directory."""
    import folder_paths
    from PIL import Image

    name = f"hn_sizes_{uuid.uuid4().hex[:8]}"
    folder = Path(folder_paths.get_input_directory()) / name
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(3)
    for index, ((width, height), caption) in enumerate(PICTURES):
        pixels = (torch.rand(height, width, 3, generator=generator) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"picture{index}.png")
        (folder / f"picture{index}.txt").write_text(caption)
    yield name
    shutil.rmtree(folder)


def _made_dataset(folder: str) -> dict:
    """Load Image-Text from Folder -> Make Training Dataset (nodes "2" .. "6")."""
    return {
        "1": {"class_type": "HNTestTinyModel", "inputs": {}},
        "2": {"class_type": "LoadImageTextDataSetFromFolder", "inputs": {"folder": folder}},
        "3": {"class_type": "HNTestTinyVAE", "inputs": {}},
        "4": {"class_type": "HNTestTinyCLIP", "inputs": {}},
        "5": {"class_type": "MakeTrainingDataset", "inputs": {
            "images": ["2", 0], "vae": ["3", 0], "clip": ["4", 0], "texts": ["2", 1]}},
    }


def _train_and_save(prompt: dict, host, latents, conditioning, filename: str, **widgets) -> dict:
    values = {**ct.widget_defaults(host.node_class("TrainHypernetwork")), "steps": 4, "dims": "auto",
              "learning_rate": "1e-3", "name": filename, "batch_size": 2, "seed": 8, **widgets}
    prompt["10"] = {"class_type": "TrainHypernetwork", "inputs": {
        "model": ["1", 0], "latents": latents, "conditioning": conditioning, **values}}
    prompt["11"] = {"class_type": "SaveHypernetwork", "inputs": {
        "hypernetwork": ["10", 1], "filename": filename, "format": "safetensors", "overwrite": True}}
    return prompt


def _trained(host, hypernetwork_dir, filename: str):
    network = host.pack_module("hn_core").load_hypernetwork(hypernetwork_dir / f"{filename}.safetensors")
    return network, {key: value.clone() for key, value in network.state_dict().items()}


def _fresh_weights(host, network, seed: int = 8):
    """The weights the trained network started from (same structure, dims and seed)."""
    hn_core = host.pack_module("hn_core")
    fresh = hn_core.Hypernetwork.create(network.dims, network.config, hn_core.HypernetworkInfo(), seed=seed)
    return fresh.state_dict()


def test_make_training_dataset_feeds_training_with_two_latent_sizes(dataset_host, picture_folder, hypernetwork_dir):
    prompt = _train_and_save(_made_dataset(picture_folder), dataset_host, ["5", 0], ["5", 1], "hn_made")
    executor = _execute(prompt)
    assert executor.history_result["outputs"]["11"]["text"] == ["hn_made.safetensors"]
    network, weights = _trained(dataset_host, hypernetwork_dir, "hn_made")
    assert network.info.step == 4
    start = _fresh_weights(dataset_host, network)
    assert all(torch.isfinite(value).all() for value in weights.values())
    assert any(not torch.equal(weights[key], start[key]) for key in weights)  # it learned something


def test_a_saved_and_reloaded_dataset_trains_exactly_like_the_made_one(dataset_host, picture_folder,
                                                                       hypernetwork_dir):
    import folder_paths

    _require(dataset_host, "SaveTrainingDataset", "LoadTrainingDataset")
    saved_name = f"hn_saved_{uuid.uuid4().hex[:8]}"
    save = _made_dataset(picture_folder)
    save["6"] = {"class_type": "SaveTrainingDataset", "inputs": {
        "latents": ["5", 0], "conditioning": ["5", 1], "folder_name": saved_name, "shard_size": 2}}
    _execute(save)
    # 0.33 keeps datasets in their own folder; 0.3.75 kept them in the output folder.
    root = (folder_paths.get_folder_paths("datasets")[0] if "datasets" in folder_paths.folder_names_and_paths
            else folder_paths.get_output_directory())
    dataset_dir = Path(root) / saved_name
    assert len(list(dataset_dir.glob("shard_*.pkl"))) == 3  # 5 pictures, 2 per shard
    try:
        loaded = {"1": {"class_type": "HNTestTinyModel", "inputs": {}},
                  "6": {"class_type": "LoadTrainingDataset", "inputs": {"folder_name": saved_name}}}
        _execute(_train_and_save(loaded, dataset_host, ["6", 0], ["6", 1], "hn_loaded"))
    finally:
        shutil.rmtree(dataset_dir)
    _execute(_train_and_save(_made_dataset(picture_folder), dataset_host, ["5", 0], ["5", 1], "hn_direct"))
    _, from_disk = _trained(dataset_host, hypernetwork_dir, "hn_loaded")
    _, direct = _trained(dataset_host, hypernetwork_dir, "hn_direct")
    assert from_disk.keys() == direct.keys()
    for key in direct:
        assert torch.equal(from_disk[key], direct[key]), key


def test_resolution_buckets_train(dataset_host, picture_folder, hypernetwork_dir):
    _require(dataset_host, "ResolutionBucket")
    prompt = _made_dataset(picture_folder)
    prompt["7"] = {"class_type": "ResolutionBucket", "inputs": {"latents": ["5", 0], "conditioning": ["5", 1]}}
    executor = _execute(_train_and_save(prompt, dataset_host, ["7", 0], ["7", 1], "hn_bucketed",
                                        gradient_accumulation=2))
    assert executor.history_result["outputs"]["11"]["text"] == ["hn_bucketed.safetensors"]
    network, weights = _trained(dataset_host, hypernetwork_dir, "hn_bucketed")
    assert network.info.step == 4
    start = _fresh_weights(dataset_host, network)
    assert all(torch.isfinite(value).all() for value in weights.values())
    assert any(not torch.equal(weights[key], start[key]) for key in weights)


def test_buckets_hold_each_picture_with_its_own_caption(dataset_host, picture_folder):
    """What Resolution Bucket hands over is what Train Hypernetwork pairs up: every picture's latent
    with the conditioning of its own caption, whatever order the buckets put them in."""
    _require(dataset_host, "ResolutionBucket")
    collect = dataset_host.pack_module("hn_comfy.training.inputs").collect_training_items
    run = dataset_host.nodes.NODE_CLASS_MAPPINGS
    with torch.inference_mode():
        images, texts = run["LoadImageTextDataSetFromFolder"].execute(picture_folder).result
        clip, vae = TinyClipSource().make()[0], TinyVAESource().make()[0]
        latents, conditioning = run["MakeTrainingDataset"].execute(images, [vae], [clip], texts).result
        bucket_latents, bucket_conditioning = run["ResolutionBucket"].execute(latents, conditioning).result
    direct = collect(latents, conditioning)
    bucketed = collect(bucket_latents, bucket_conditioning)
    assert len(bucket_latents) == 2 and len(bucketed.latents) == len(PICTURES)
    pairs = {(tuple(l.shape), c[0].sum().item()) for l, c in zip(direct.latents, direct.conditionings)}
    assert {(tuple(l.shape), c[0].sum().item()) for l, c in zip(bucketed.latents, bucketed.conditionings)} == pairs
    assert {tuple(l.shape[-2:]) for l in direct.latents} == {(8, 8), (16, 8)}
