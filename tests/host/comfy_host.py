"""Start ComfyUI in this process, the way its ``main.py`` does, far enough for nodes to work.

What ``start()`` does, in order:

1. find the ComfyUI root (``$COMFYUI_PATH``, else ``<repo>/.host/ComfyUI``, which
   ``scripts/provision_host.sh`` fills) and put it first on ``sys.path``;
2. leave ComfyUI's argument parsing off (``comfy.options``), so ``comfy.cli_args.args`` holds the
   defaults; select the CPU when CUDA is absent, and point ``--base-directory`` at a temp folder so
   models/, output/, input/, temp/ and user/ are never the host tree's;
3. run ``nodes.init_extra_nodes`` (ComfyUI's built-in extra nodes, e.g. ``HypernetworkLoader``),
   without API nodes and without scanning ``custom_nodes/``;
4. load this pack with ``nodes.load_custom_node(<repo root>)``, exactly as ComfyUI loads any folder in
   ``custom_nodes/``, so our nodes land in ``nodes.NODE_CLASS_MAPPINGS``.

ComfyUI keeps its state in module globals, so there is one host per process: ``start()`` is
idempotent and returns the same ``ComfyHost`` on every call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]

_host: "ComfyHost | None" = None


def comfyui_root() -> Path:
    """The ComfyUI tree the tests run against: ``$COMFYUI_PATH`` wins over the pinned host."""
    env = os.environ.get("COMFYUI_PATH")
    root = Path(env).expanduser().resolve() if env else REPO_ROOT / ".host" / "ComfyUI"
    if not (root / "main.py").is_file() or not (root / "nodes.py").is_file():
        raise RuntimeError(
            f"no ComfyUI tree at {root}: run scripts/provision_host.sh (or set COMFYUI_PATH to a checkout)"
        )
    return root


@dataclass
class ComfyHost:
    """Handles onto the running in-process ComfyUI."""

    root: Path  # the ComfyUI tree
    base_dir: Path  # temp --base-directory: models/, output/, input/, temp/, user/
    pack_dir: Path  # this repository, loaded as a custom node
    pack_module_name: str  # the sys.modules key ComfyUI's loader gave the pack
    pack_node_names: list[str] = field(default_factory=list)  # what the pack added to NODE_CLASS_MAPPINGS
    pack_load_error: str | None = None  # what ComfyUI logged when the pack failed to load (None: loaded)
    builtin_import_failures: list[str] = field(default_factory=list)  # comfy_extras files that failed

    @property
    def nodes(self) -> ModuleType:
        """ComfyUI's ``nodes`` module (``NODE_CLASS_MAPPINGS`` and the built-in node classes)."""
        return sys.modules["nodes"]

    @property
    def folder_paths(self) -> ModuleType:
        return sys.modules["folder_paths"]

    def node_class(self, name: str) -> type:
        """A registered node class by its id, as the executor would look it up."""
        return self.nodes.NODE_CLASS_MAPPINGS[name]

    def model_dir(self, category: str) -> Path:
        """The (temp) folder that ``folder_paths`` uses first for a model category."""
        return Path(self.folder_paths.get_folder_paths(category)[0])

    def pack_module(self, relative_name: str) -> ModuleType:
        """A module of this pack as the loaded nodes see it (e.g. ``"hn_core.network.hypernetwork"``).

        The pack is imported under ComfyUI's name for it, so ``hn_core`` imported directly by a
        unit test is a *different* module object; use this to share classes with the nodes.
        """
        import importlib

        return importlib.import_module(f"{self.pack_module_name}.{relative_name}")


def start(base_dir: Path | None = None, pack_dir: Path = REPO_ROOT) -> ComfyHost:
    """Start (once per process) and return the in-process ComfyUI host.

    ``base_dir``: the --base-directory (default: a new temp folder). ``pack_dir``: the custom node
    folder to load (default: this repository).
    """
    global _host
    if _host is not None:
        return _host

    root = comfyui_root()
    base = Path(base_dir) if base_dir is not None else Path(tempfile.mkdtemp(prefix="comfy-host-"))
    _put_comfy_first_on_path(root)
    _configure_args(base)
    _import_paths(base)
    failures = _init_builtin_nodes()
    name, added, error = _load_pack(Path(pack_dir))
    _host = ComfyHost(
        root=root,
        base_dir=base,
        pack_dir=Path(pack_dir),
        pack_module_name=name,
        pack_node_names=added,
        pack_load_error=error,
        builtin_import_failures=failures,
    )
    log.info("ComfyUI host at %s, base directory %s, pack nodes %s", root, base, added)
    return _host


def _put_comfy_first_on_path(root: Path) -> None:
    # First, not appended: the repo root (on sys.path under pytest) holds our own `nodes/` package,
    # which must not shadow ComfyUI's top-level `nodes.py`.
    mod = sys.modules.get("nodes")
    if mod is not None and Path(getattr(mod, "__file__", "") or "").resolve() != root / "nodes.py":
        raise RuntimeError(f"a module named 'nodes' that is not ComfyUI's is already imported: {mod!r}")
    if str(root) in sys.path:
        sys.path.remove(str(root))
    sys.path.insert(0, str(root))


def _configure_args(base: Path) -> None:
    # comfy.options.args_parsing stays False: cli_args parses [] and pytest's argv is left alone.
    import torch
    from comfy.cli_args import args

    args.base_directory = str(base)
    if not torch.cuda.is_available():
        args.cpu = True  # read when comfy.model_management is first imported
    args.disable_api_nodes = True


def _import_paths(base: Path) -> None:
    # No extra_model_paths.yaml is read (main.py would): a user's own model folders stay out of tests.
    import folder_paths

    # main.py imports ComfyUI's `utils` package this early; do the same, because importing `nodes`
    # later puts comfy/ first on sys.path and a bare `import utils` would then find comfy/utils.py.
    import utils.extra_config  # noqa: F401

    # folder_paths reads --base-directory once, at import; something imported it before us.
    if Path(folder_paths.base_path).resolve() != base.resolve():
        raise RuntimeError(f"folder_paths was imported before the host started (base {folder_paths.base_path})")
    for category in ("hypernetworks", "checkpoints", "loras"):
        Path(folder_paths.get_folder_paths(category)[0]).mkdir(parents=True, exist_ok=True)
    Path(folder_paths.get_output_directory()).mkdir(parents=True, exist_ok=True)


def _init_builtin_nodes() -> list[str]:
    # The rest of main.py's import sequence, in its order.
    import comfy.utils  # noqa: F401
    import execution  # noqa: F401
    import server  # noqa: F401
    import nodes
    import comfy.model_management  # noqa: F401
    import hook_breaker_ac10a0

    # main.py guards the core functions against custom nodes that monkeypatch them; so do we.
    hook_breaker_ac10a0.save_functions()
    try:
        failures = asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    finally:
        hook_breaker_ac10a0.restore_functions()
    if failures:
        # Expected for a few (e.g. nodes_audio without torchaudio); not fatal for ComfyUI either.
        log.info("comfy_extras files that failed to import: %s", failures)
    return list(failures)


def _load_pack(pack_dir: Path) -> tuple[str, list[str], str | None]:
    """Load the pack like ComfyUI loads ``custom_nodes/<pack>``; returns (module name, new nodes, error)."""
    import nodes

    before = set(nodes.NODE_CLASS_MAPPINGS)
    path = str(pack_dir)
    # The loader catches every exception and only logs it: keep those records as the failure reason.
    records = _Capture()
    logging.getLogger().addHandler(records)
    try:
        # Same call and `ignore` set as nodes.init_external_custom_nodes: built-ins cannot be overridden.
        ok = asyncio.run(nodes.load_custom_node(path, ignore=before, module_parent="custom_nodes"))
    finally:
        logging.getLogger().removeHandler(records)
    # For a folder, load_custom_node names the module after its full path ('.' -> '_x_').
    name = path.replace(".", "_x_")
    added = sorted(set(nodes.NODE_CLASS_MAPPINGS) - before)
    error = None
    if not ok:
        error = "\n".join(records.lines) or "load_custom_node returned False"
        log.error("ComfyUI could not load the pack at %s:\n%s", path, error)
    return name, added, error


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
