"""The import rules of ARCHITECTURE.md, checked from the source (no module is imported).

Each file's `import` statements are read with `ast`, relative imports resolved against the pack
root, and every arrow checked against the layers:

    nodes/  ->  hn_comfy/  ->  hn_core/        batch_runner/ -> hn_core.atomic_write only

Inside hn_core and hn_comfy each subpackage has a rank; an arrow may only point to a lower rank
(or stay inside its own subpackage). `python -m tools.import_rules` prints the violations.
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("nodes", "hn_comfy", "hn_core", "batch_runner")

# Modules the ComfyUI host provides; only hn_comfy (and ComfyUI's own `nodes.py`, never ours) may
# touch them. `nodes` here means ComfyUI's top-level nodes.py, reached by an absolute import.
HOST_MODULES = frozenset({
    "comfy", "comfy_extras", "comfy_api", "comfy_api_nodes", "comfy_execution", "comfy_config",
    "folder_paths", "server", "execution", "latent_preview", "node_helpers", "app", "nodes",
})

# Lower ranks are imported by higher ones, never the other way; equal ranks do not import each
# other. A module directly in the layer's folder (errors.py, atomic_write.py) is its own subpackage.
RANKS = {
    "hn_core": {"errors": 0, "atomic_write": 0, "network": 1, "formats": 2, "inference": 2,
                "export": 3, "merge": 3, "training": 3, "prompt": 3},
    "hn_comfy": {"ui": 0, "files": 0, "apply": 1, "export": 2, "merge": 2, "training": 2, "prompt": 2},
}
# What each layer may import from the pack's other layers (beyond itself).
ALLOWED_LAYERS = {
    "nodes": {"hn_comfy", "hn_core"},
    "hn_comfy": {"hn_core"},
    "hn_core": set(),
    "batch_runner": {"hn_core.atomic_write"},
}


@dataclass(frozen=True)
class Arrow:
    source: str       # importing module, dotted from the pack root
    target: str       # imported module, dotted; pack-relative when it is ours
    names: tuple      # names taken with `from ... import`
    relative: bool    # written with leading dots (so it is ours for sure)
    line: int


def module_name(path: Path, root: Path = REPO_ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def arrows(module: str, source: str, is_package: bool = False) -> list[Arrow]:
    """Every import in ``source``, the text of ``module``."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Arrow(module, alias.name, (), False, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names)
            if node.level == 0:
                found.append(Arrow(module, node.module, names, False, node.lineno))
                continue
            base = package[:len(package) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            if not node.module:  # `from . import x`: the names are modules of that package
                found += [Arrow(module, f"{target}.{name}".strip("."), (), True, node.lineno) for name in names]
            else:
                found.append(Arrow(module, target, names, True, node.lineno))
    return found


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def violations_of(arrow: Arrow) -> list[str]:
    """What ``arrow`` breaks, as sentences; empty when it is allowed."""
    layer = arrow.source.split(".")[0]
    if layer not in LAYERS or arrow.target in ("", "__future__"):
        return []
    target_top = arrow.target.split(".")[0]
    ours = arrow.relative or (target_top in LAYERS and target_top != "nodes")
    where = f"{arrow.source}:{arrow.line} imports {arrow.target}"
    problems = []
    private = [name for name in arrow.names if name.startswith("_")]
    if ours and private and arrow.target != arrow.source:
        problems.append(f"{where}: another module's private name(s) {', '.join(private)}")
    if not ours:
        if target_top in HOST_MODULES and layer != "hn_comfy":
            problems.append(f"{where}: only hn_comfy may touch the ComfyUI host")
        return problems
    if target_top == layer:
        return problems + _rank_violations(layer, arrow, where)
    if not any(arrow.target == allowed or arrow.target.startswith(allowed + ".")
               for allowed in ALLOWED_LAYERS[layer]):
        problems.append(f"{where}: {layer} may import only {sorted(ALLOWED_LAYERS[layer]) or 'itself'}")
    return problems


def _rank_violations(layer: str, arrow: Arrow, where: str) -> list[str]:
    if layer == "nodes":
        # the registry (nodes/__init__) imports every node; a node imports no other node
        if arrow.source != "nodes" and arrow.target != arrow.source:
            return [f"{where}: a node never imports another node"]
        return []
    ranks = RANKS.get(layer)
    if ranks is None:
        return []
    source_sub, target_sub = _subpackage(arrow.source), _subpackage(arrow.target)
    if source_sub == "" or source_sub == target_sub:
        return []  # the layer's own __init__ (a lazy facade), or inside one subpackage
    if source_sub not in ranks:
        return [f"{where}: {layer}/{source_sub} has no rank yet (give it one here and in ARCHITECTURE.md)"]
    if target_sub not in ranks:  # `from .. import name`: a name of the layer's facade, not a subpackage
        return [f"{where}: reaches up into the {layer} facade"]
    if ranks[target_sub] >= ranks[source_sub]:
        return [f"{where}: {source_sub} (rank {ranks[source_sub]}) may not import {target_sub} (rank {ranks[target_sub]})"]
    return []


def tree_violations(root: Path = REPO_ROOT) -> list[str]:
    problems = []
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            module = module_name(path, root)
            for arrow in arrows(module, path.read_text(encoding="utf-8"), path.name == "__init__.py"):
                problems += violations_of(arrow)
    return problems


def packages(root: Path = REPO_ROOT) -> list[str]:
    """Every package folder of the layers, as a path like ``hn_core/formats``."""
    return sorted(str(init.parent.relative_to(root)) for layer in LAYERS
                  for init in (root / layer).rglob("__init__.py"))


if __name__ == "__main__":
    found = tree_violations()
    print("\n".join(found) or "no violations")  # a command-line report, not logging
    sys.exit(1 if found else 0)
