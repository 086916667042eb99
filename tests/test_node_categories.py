"""The pack's nodes sit beside the host's own siblings in the node library.

On a host that files its nodes under `model/...` (ComfyUI >= 0.3x's convention), each group of ours is a
subfolder of the category the host gives its own node of that kind; on an older host (0.3.75 files its
hypernetwork loader under plain `loaders`) they use today's convention all the same.
"""
from __future__ import annotations

import pytest

# our node -> (the host node of the same kind, today's category of that kind)
SIBLINGS = {
    "LoadHypernetwork": ("HypernetworkLoader", "model/loaders"),
    "ApplyHypernetwork": ("HypernetworkLoader", "model/loaders"),
    "HypernetworkStrength": ("HypernetworkLoader", "model/loaders"),
    "HypernetworkLoaderA1111": ("HypernetworkLoader", "model/loaders"),
    "ApplyPromptHypernetworks": ("HypernetworkLoader", "model/loaders"),
    "TrainHypernetwork": ("TrainLoraNode", "model/training"),
    "SaveHypernetwork": ("SaveLoRA", "model/merging"),
    "MergeHypernetworks": ("SaveLoRA", "model/merging"),
    "HypernetworkToLoRA": ("SaveLoRA", "model/merging"),
    "BakeHypernetwork": ("SaveLoRA", "model/merging"),
}


def host_category(comfy_host, node_type: str) -> str | None:
    cls = comfy_host.nodes.NODE_CLASS_MAPPINGS.get(node_type)
    if cls is None:
        return None
    if hasattr(cls, "GET_SCHEMA"):  # a V3 node: the category lives in its schema
        return cls.GET_SCHEMA().category
    return cls.CATEGORY


def test_every_registered_node_has_a_sibling_rule(comfy_host):
    assert sorted(comfy_host.pack_node_names) == sorted(SIBLINGS)


@pytest.mark.parametrize("ours", sorted(SIBLINGS))
def test_node_is_filed_beside_its_host_sibling(comfy_host, ours):
    sibling, convention = SIBLINGS[ours]
    theirs = host_category(comfy_host, sibling)
    expected_parent = theirs if theirs and theirs.startswith("model/") else convention
    assert comfy_host.node_class(ours).CATEGORY == f"{expected_parent}/hypernetworks"
