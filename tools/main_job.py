"""The main job: a headless ComfyUI with this pack runs the shipped workflows end to end.

    bash scripts/run_main_job.sh [--checkpoint NAME_OR_PATH] [--workflows DIR] [--output DIR]

(the script provisions the host, then runs ``python -m tools.main_job --comfyui <root> ...``).

1. prepare ``<output>/base`` as ComfyUI's ``--base-directory``: this repository linked into
   ``custom_nodes/``, ``models/checkpoints``, ``models/hypernetworks``, ``output/``;
2. the checkpoint: the one named, else the embedded default model (``tools.default_model``,
   cached under ``--cache``);
3. the demo hypernetwork (``tools.demo_hypernetwork``) into ``models/hypernetworks``;
4. start ComfyUI on 127.0.0.1, check that it lists the pack's nodes;
5. run every API workflow in ``--workflows`` with the job's checkpoint, check the images on disk;
6. log a summary (also written to ``<output>/summary.json``), stop the server whatever happened.

Exit status: 0 when every workflow succeeded, 1 when one failed, 2 when the job could not start.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from hn_core.batch.base_dir import BaseDir, link_into, prepare_base_dir
from hn_core.batch.errors import BatchError, ServerError
from hn_core.batch.server_process import ComfyServer, server_env
from hn_core.batch.workflows import load_api_workflows

from . import default_model
from .demo_hypernetwork import write_demo
from .layout import DEFAULT_CACHE, DEFAULT_OUTPUT, DEFAULT_WORKFLOWS, REPO_ROOT
from .prompts import WorkflowResult, missing_node_types, run_workflow, substitute_models

log = logging.getLogger("main_job")

PACK_NODES = ("LoadHypernetwork", "ApplyHypernetwork")


class SetupError(RuntimeError):
    """The job cannot run: bad arguments, a missing file, a server that does not come up."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="run_main_job.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", metavar="NAME_OR_PATH",
                   help="a checkpoint file, or a name in <output>/base/models/checkpoints or the ComfyUI "
                        "tree's models/checkpoints (default: the embedded default model)")
    p.add_argument("--workflows", type=Path, default=DEFAULT_WORKFLOWS, metavar="DIR",
                   help="folder of API-format workflow JSON files (default: workflows/api)")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, metavar="DIR",
                   help="where the base directory, server log and summary go (default: out/main_job)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, metavar="DIR",
                   help="kept between runs: the default model and bytecode (default: out/cache)")
    p.add_argument("--default-model", choices=sorted(default_model.UNET_CONFIGS), default=default_model.DEFAULT_VARIANT,
                   help="which embedded default model to use when no --checkpoint is given")
    p.add_argument("--comfyui", type=Path, default=None,
                   help="the ComfyUI tree (default: $COMFYUI_PATH, else .host/ComfyUI)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per workflow")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for ComfyUI's main.py, e.g. --server-arg=--disable-metadata")
    return p.parse_args(argv)


def comfy_root_from(arg: Path | None) -> Path:
    root = arg or Path(os.environ.get("COMFYUI_PATH") or REPO_ROOT / ".host" / "ComfyUI")
    root = root.expanduser().resolve()
    if not (root / "main.py").is_file():
        raise SetupError(f"no ComfyUI at {root}: run scripts/provision_host.sh or set COMFYUI_PATH")
    return root


def resolve_checkpoint(spec: str, base: BaseDir, comfy_root: Path) -> str:
    """Make the named checkpoint visible in the base directory; return its ComfyUI name."""
    path = Path(spec).expanduser()
    if path.is_file():
        link_into(base.checkpoints / path.name, path)
        return path.name
    if (base.checkpoints / spec).is_file():
        return spec
    in_tree = comfy_root / "models" / "checkpoints" / spec
    if in_tree.is_file():  # a user's own ComfyUI checkout (COMFYUI_PATH): linked, never copied or moved
        link_into(base.checkpoints / Path(spec).name, in_tree)
        return Path(spec).name
    raise SetupError(f"checkpoint {spec!r} not found: not a file, not in {base.checkpoints}, "
                     f"not in {comfy_root / 'models' / 'checkpoints'}")


def combo_options(object_info: dict, node: str, name: str) -> list[str]:
    """The choices of a combo input, in either of the shapes /object_info uses."""
    spec = object_info[node]["input"]["required"][name]
    if isinstance(spec[0], list):
        return spec[0]
    return list(spec[1].get("options", []))  # "COMBO", {"options": [...]}


def check_server(object_info: dict, checkpoint: str, hypernetwork: str) -> None:
    missing = [n for n in PACK_NODES if n not in object_info]
    if missing:
        raise SetupError(f"ComfyUI did not load the pack's nodes {missing} (see the server log)")
    if checkpoint not in combo_options(object_info, "CheckpointLoaderSimple", "ckpt_name"):
        raise SetupError(f"ComfyUI does not list the checkpoint {checkpoint!r}")
    if hypernetwork not in combo_options(object_info, "LoadHypernetwork", "hypernetwork_name"):
        raise SetupError(f"ComfyUI does not list the hypernetwork {hypernetwork!r}")


def run(args: argparse.Namespace, summary: dict) -> list[WorkflowResult]:
    comfy_root = comfy_root_from(args.comfyui)
    output = args.output.expanduser().resolve()
    cache = args.cache.expanduser().resolve()
    base = prepare_base_dir(output / "base")
    summary.update(comfyui=str(comfy_root), base_directory=str(base.root))
    log.info("ComfyUI tree %s (read only); base directory %s", comfy_root, base.root)

    workflows = load_api_workflows(args.workflows)
    if not workflows:
        raise SetupError(f"no API-format workflows (*.json) in {args.workflows}")

    if args.checkpoint:
        checkpoint = resolve_checkpoint(args.checkpoint, base, comfy_root)
    else:
        t0 = time.perf_counter()
        path, generated = default_model.ensure_default_model(
            comfy_root, cache, args.default_model, env=server_env(cache / "pycache"))
        seconds = time.perf_counter() - t0
        log.info("default model %s (%s, %.0f MB) %s in %.1f s", path.name, args.default_model,
                 path.stat().st_size / 1e6, "generated" if generated else "found in the cache", seconds)
        summary["default_model"] = {"path": str(path), "variant": args.default_model, "generated": generated,
                                    "seconds": round(seconds, 2), "bytes": path.stat().st_size}
        link_into(base.checkpoints / path.name, path)
        checkpoint = path.name
    summary["checkpoint"] = checkpoint
    hypernetwork = write_demo(base.hypernetworks).name

    server = ComfyServer(comfy_root, base, output / "comfyui.log", extra_args=args.server_arg,
                         pycache_dir=cache / "pycache")
    results: list[WorkflowResult] = []
    try:
        server.start()
        summary["server"] = {"pid": server.pid, "port": server.port, "startup_seconds": round(server.startup_seconds, 2),
                             "log": str(server.log_path)}
        object_info = server.get_json("/object_info", timeout=120)
        check_server(object_info, checkpoint, hypernetwork)
        available = set(combo_options(object_info, "LoadHypernetwork", "hypernetwork_name"))
        for name, workflow in workflows.items():
            prompt = substitute_models(workflow, checkpoint, hypernetwork, available)
            unknown = missing_node_types(prompt, object_info)
            if unknown:
                log.error("workflow %s uses node types this ComfyUI does not have: %s", name, unknown)
                results.append(WorkflowResult(name, False, 0.0, error=f"unknown node types {unknown}"))
                continue
            results.append(run_workflow(server, name, prompt, base.output, args.timeout))
        if not all(r.ok for r in results):
            log.info("the server's full log: %s", server.log_path)
    finally:
        server.stop()
    return results


def log_summary(results: list[WorkflowResult]) -> None:
    log.info("summary:")
    log.info("  %-28s %-6s %8s  %s", "workflow", "status", "seconds", "outputs")
    for r in results:
        outputs = ", ".join(str(p) for p in r.outputs) if r.ok else (r.error or "").splitlines()[0]
        log.info("  %-28s %-6s %8.1f  %s", r.name, "ok" if r.ok else "FAILED", r.seconds, outputs)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    args = parse_args(argv)
    # SIGTERM's default kills without unwinding; exit normally instead so the server is stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    summary: dict = {"ok": False}
    status = 2
    try:
        results = run(args, summary)
        summary["workflows"] = [{"name": r.name, "ok": r.ok, "seconds": round(r.seconds, 2),
                                 "outputs": [str(p) for p in r.outputs], "error": r.error} for r in results]
        log_summary(results)
        summary["ok"] = bool(results) and all(r.ok for r in results)
        status = 0 if summary["ok"] else 1
    except (SetupError, ServerError, BatchError) as e:
        log.error("%s", e)
    except KeyboardInterrupt:
        log.error("interrupted")
        status = 130
    finally:
        out = args.output.expanduser().resolve()
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("main job %s (exit %d)", "succeeded" if status == 0 else "FAILED", status)
    return status


if __name__ == "__main__":
    sys.exit(main())
