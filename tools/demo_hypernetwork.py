"""The demo hypernetwork the shipped workflows load: made with hn_core, deterministic.

Dims 320, 640, 1280 (SD1.x self-attention) and 768 (SD1.x cross-attention, the CLIP-L text
context); layer structure [1, 2, 1], ReLU, layer norm: the common A1111 training setup.

A freshly initialised A1111 network is close to the identity on purpose (its LayerNorm weights
are N(0, 0.01), so each MLP adds about 1 % of its input). A demo must show an effect, so the
LayerNorm gains are redrawn larger (N(0, ``LAYER_NORM_GAIN``)): each key/value input then moves
by about its own size at strength 1. Even so, on the random-weight default model the image
changes measurably rather than dramatically (at 128x128, 2 steps: mean 7/255 per channel, a
third of the pixels by more than 8 levels): a random UNet's output is dominated by its
convolution paths, not by attention. On a trained model the same network is a strong one.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from hn_core import Hypernetwork, HypernetworkConfig, HypernetworkInfo, save_hypernetwork

log = logging.getLogger(__name__)

DEMO_NAME = "hn_demo.pt"
# A second, different network for the stacking workflow: linear, so Apply folds it (speed path).
DEMO_LINEAR_NAME = "hn_demo_linear.pt"
DIMS = (320, 640, 768, 1280)
SEED = 20221007  # NovelAI's leak made hypernetworks popular in October 2022
LAYER_NORM_GAIN = 1.0


def build_demo() -> Hypernetwork:
    config = HypernetworkConfig(layer_structure=(1, 2, 1), activation_func="relu", is_layer_norm=True,
                                weight_initialization="KaimingNormal")
    info = HypernetworkInfo(name=Path(DEMO_NAME).stem,
                            optional_info="random demo weights from comfyui-hypernetworks tools/demo_hypernetwork.py")
    net = Hypernetwork.create(DIMS, config, info, seed=SEED)
    generator = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.normal_(0.0, LAYER_NORM_GAIN, generator=generator)
    return net


def build_demo_linear() -> Hypernetwork:
    config = HypernetworkConfig(layer_structure=(1, 2, 1), activation_func="linear", weight_initialization="Normal")
    info = HypernetworkInfo(name=Path(DEMO_LINEAR_NAME).stem,
                            optional_info="random demo weights from comfyui-hypernetworks tools/demo_hypernetwork.py")
    return Hypernetwork.create(DIMS, config, info, seed=SEED + 2)


def write_demos(folder: Path) -> list[Path]:
    """Both demo networks (``hn_demo.pt``, then ``hn_demo_linear.pt``) into ``folder``."""
    linear = Path(folder) / DEMO_LINEAR_NAME
    save_hypernetwork(build_demo_linear(), linear)
    return [write_demo(folder), linear]


def write_demo(folder: Path) -> Path:
    """Write the demo network into ``folder`` (an A1111 ``.pt``) and return its path."""
    path = Path(folder) / DEMO_NAME
    net = build_demo()
    save_hypernetwork(net, path)
    log.info("demo hypernetwork %s: dims %s, %d parameters", path, list(net.dims), net.parameter_count())
    return path
