"""ARCHITECTURE.md stays true: the import rules hold on the whole tree, and the map names every package."""
from __future__ import annotations

import pytest

from tools.import_rules import REPO_ROOT, arrows, packages, tree_violations, violations_of


def problems(module: str, source: str, is_package: bool = False) -> list[str]:
    return [p for arrow in arrows(module, source, is_package) for p in violations_of(arrow)]


def test_the_tree_keeps_every_import_rule():
    assert tree_violations() == []


def test_the_map_names_every_package_of_the_tree():
    text = (REPO_ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    missing = [package for package in packages() if f"`{package}/`" not in text]
    assert missing == []


@pytest.mark.parametrize("module, source, broken", [
    ("hn_core.network.config", "import comfy.model_patcher", "host"),
    ("hn_core.formats.files", "import folder_paths", "host"),
    ("hn_core.formats.files", "from nodes import LoraLoader", "host"),  # ComfyUI's nodes.py
    ("hn_core.inference.patch", "from ...hn_comfy.apply import folding", "may import only"),
    ("hn_core.network.config", "from ..formats.files import load", "rank"),
    ("hn_core.formats.files", "from ..inference.patch import HypernetworkPatch", "rank"),
    ("hn_core.export.lora_export", "from .. import load_hypernetwork", "facade"),
    ("hn_comfy.apply.folding", "from ..training.session import TrainingSession", "rank"),
    ("hn_comfy.files.saving", "from ...nodes.save_hypernetwork import SaveHypernetwork", "may import only"),
    ("nodes.save_hypernetwork", "from .train_hypernetwork import TRAINING_CATEGORY", "another node"),
    ("nodes.load_hypernetwork", "import comfy.sd", "host"),
    ("batch_runner.client", "from hn_core.formats.files import load", "may import only"),
    ("batch_runner.client", "import comfy.utils", "host"),
    ("hn_comfy.export.plan", "from ..apply.folding import _fold_one", "private"),
    ("hn_core.training.trainer", "from .checkpointing import _helper", "private"),  # even a sibling's
])
def test_each_kind_of_broken_arrow_is_caught(module, source, broken):
    found = problems(module, source)
    assert len(found) == 1 and broken in found[0], found


@pytest.mark.parametrize("module, source, is_package", [
    ("nodes", "from . import load_hypernetwork, train_hypernetwork", True),  # the registry
    ("nodes.load_hypernetwork", "from ..hn_comfy.files.model_folders import list_hypernetwork_files", False),
    ("hn_comfy.training.session", "from ..apply.folding import fold\nimport comfy.samplers", False),
    ("hn_comfy.export.bake", "from ...hn_core.export.lora_export import export_lora", False),
    ("hn_core.training.trainer", "from ..network.hypernetwork import Hypernetwork\nimport torch", False),
    ("hn_core.formats.a1111_pt", "from ..errors import HypernetworkError", False),
    ("batch_runner.outputs", "from hn_core.atomic_write import atomic_write", False),
])
def test_allowed_arrows_pass(module, source, is_package):
    assert problems(module, source, is_package) == []
