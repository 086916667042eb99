"""The main job: the shipped demo through the batch runner on a headless ComfyUI with this pack.

    bash scripts/run_main_job.sh [--checkpoint NAME_OR_PATH] [--output DIR] [--set NODE.inputs.NAME=VALUE ...]

(the script provisions the host, then runs ``python -m tools.main_job --comfyui <root> ...``).

1. the checkpoint: the one named, else the embedded default model (``tools.default_model``: the
   small SD1.5-layout model this project trained to draw its shape world, assembled once into
   ``--cache``);
2. the demo hypernetworks (``tools.demo_hypernetwork``) and the demo dataset (``datasets/``:
   eight pictures in a style the default model never saw, made by the project) are staged;
3. the batch runner (``batch_runner``) starts its embedded ComfyUI on 127.0.0.1 and runs every
   API workflow in ``--workflows``, those that train first: train a hypernetwork on the demo images,
   save it, render a strength sweep with and without it; apply the trained one through an A1111
   ``<hypernet:…>`` prompt tag at the same strengths; apply one; stack two with a strength schedule;
4. into ``--output``: ``images/`` (every output, named by job), ``contact_sheet.png`` (a row
   per job; for a strength sweep, the training set and then one row per strength with its style
   distance), ``loss_graph.png``, ``hypernetworks/`` (what the training
   saved), ``summary.json`` (with ``style_sweep``, the first, and ``style_sweeps`` by job), ``comfyui.log``; the server is always stopped.

A second run with the same inputs finds its jobs done in ``images/manifest.json`` and only
rebuilds the sheet; ``--fresh`` starts over. Exit status: 0 when every job succeeded, 1 when one
failed, 2 when the job could not start, 130 on Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import sys
import time
from pathlib import Path

from hn_core.atomic_write import atomic_write
from batch_runner import (BatchError, BatchResult, ServerError, embedded_server, expand_jobs, find_comfyui,
                           load_api_workflows, parse_override, run_batch, server_env)

from . import default_model
from .contact_sheet import contact_sheet
from .demo_dataset import DATASET_DIR, install_into
from .demo_hypernetwork import write_demos
from .layout import DEFAULT_CACHE, DEFAULT_OUTPUT, DEFAULT_WORKFLOWS
from .prompts import missing_node_types, substitute_models
from .style_score import load_rgb
from .style_sweep import prompt_text_of, style_sweep

log = logging.getLogger("main_job")

PACK_NODES = ("LoadHypernetwork", "ApplyHypernetwork", "HypernetworkStrength", "TrainHypernetwork",
              "SaveHypernetwork")
LOSS_GRAPH = "LossGraphNode"


class SetupError(RuntimeError):
    """The job cannot run: bad arguments, a missing file, a server without the pack's nodes."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="run_main_job.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", metavar="NAME_OR_PATH",
                   help="a checkpoint file, or a name in the ComfyUI tree's models/checkpoints "
                        "(default: the embedded demo model, which draws only simple shapes)")
    p.add_argument("--workflows", type=Path, default=DEFAULT_WORKFLOWS, metavar="DIR",
                   help="folder of API-format workflow JSON files (default: workflows/api)")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, metavar="DIR",
                   help="where images, contact sheet, loss graph, log and summary go (default: out/main_job)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, metavar="DIR",
                   help="kept between runs: the default model and bytecode (default: out/cache)")
    p.add_argument("--default-model", choices=sorted(default_model.UNET_CONFIGS), default=default_model.DEFAULT_VARIANT,
                   help="which embedded default model to use when no --checkpoint is given")
    p.add_argument("--set", action="append", default=[], metavar="NODE.inputs.NAME=VALUE",
                   help="an override or sweep for the batch runner (see python -m batch_runner --help)")
    p.add_argument("--fresh", action="store_true", help="forget the jobs an earlier run finished")
    p.add_argument("--comfyui", type=Path, default=None,
                   help="the ComfyUI tree (default: $COMFYUI_PATH, else .host/ComfyUI)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per job")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for ComfyUI's main.py, e.g. --server-arg=--disable-metadata")
    return p.parse_args(argv)


def resolve_checkpoint(spec: str, comfy_root: Path) -> Path:
    path = Path(spec).expanduser()
    if path.is_file():
        return path.resolve()
    in_tree = comfy_root / "models" / "checkpoints" / spec
    if in_tree.is_file():  # a user's own ComfyUI checkout (COMFYUI_PATH): linked, never copied or moved
        return in_tree.resolve()
    raise SetupError(f"checkpoint {spec!r} not found: not a file, not in {comfy_root / 'models' / 'checkpoints'}")


def default_checkpoint(args, comfy_root: Path, cache: Path, summary: dict) -> Path:
    t0 = time.perf_counter()
    path, generated = default_model.ensure_default_model(
        comfy_root, cache, args.default_model, env=server_env(cache / "pycache"))
    seconds = time.perf_counter() - t0
    what = ("the project's small demo model: it draws coloured shapes on plain backgrounds, nothing else"
            if args.default_model == default_model.DEMO else "RANDOM weights: the images show the pipeline, not a picture")
    log.info("No checkpoint named: using the embedded default model %s (%s layout, %.0f MB, %s in %.1f s): %s.",
             path.name, args.default_model, path.stat().st_size / 1e6,
             "generated" if generated else "found in the cache", seconds, what)
    summary["default_model"] = {"path": str(path), "variant": args.default_model, "generated": generated,
                                "seconds": round(seconds, 2), "bytes": path.stat().st_size}
    return path


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


def run(args: argparse.Namespace, summary: dict) -> BatchResult:
    comfy_root = find_comfyui(args.comfyui)
    output = args.output.expanduser().resolve()
    cache = args.cache.expanduser().resolve()
    images = output / "images"
    if args.fresh and images.exists():
        shutil.rmtree(images)
    summary.update(comfyui=str(comfy_root), output=str(output))

    workflows = training_first(load_api_workflows(args.workflows))
    if not workflows:
        raise SetupError(f"no API-format workflows (*.json) in {args.workflows}")
    overrides = [parse_override(spec) for spec in args.set]
    checkpoint = (resolve_checkpoint(args.checkpoint, comfy_root) if args.checkpoint
                  else default_checkpoint(args, comfy_root, cache, summary))
    summary["checkpoint"] = str(checkpoint)

    staging = output / "staging"  # what the server sees besides the checkpoint
    demo, *more_demos = write_demos(staging / "hypernetworks")
    install_into(staging / "input")

    with embedded_server(comfy_root=comfy_root, checkpoints=[checkpoint], hypernetworks=[demo, *more_demos],
                         input_dir=staging / "input", log_path=output / "comfyui.log",
                         extra_args=args.server_arg, pycache_dir=cache / "pycache") as server:
        summary["server"] = {"pid": server.pid, "port": server.port, "log": str(server.log_path),
                             "startup_seconds": round(server.startup_seconds or 0.0, 2)}
        object_info = server.get_json("/object_info", timeout=120)
        check_server(object_info, checkpoint.name, demo.name)
        available = set(combo_options(object_info, "LoadHypernetwork", "hypernetwork_name"))
        prompts = {name: substitute_models(workflow, checkpoint.name, demo.name, available)
                   for name, workflow in workflows.items()}
        for name, prompt in prompts.items():
            unknown = missing_node_types(prompt, object_info)
            if unknown:
                raise SetupError(f"workflow {name} uses node types this ComfyUI does not have: {unknown}")
        jobs = expand_jobs(prompts, overrides)
        log.info("running %d jobs through the batch runner on %s", len(jobs), server.url)
        result = run_batch(jobs, [server.url], images, timeout=args.timeout)
        summary["trained_hypernetworks"] = [str(p) for p in keep_trained(server.base.hypernetworks, output)]
    return result


def training_first(workflows: dict[str, dict]) -> dict[str, dict]:
    """The workflows in name order, those that train first: the batch runner runs one server's jobs in
    order, so a later workflow can use what training saved (prompt_tags names the trained network)."""
    def trains(workflow: dict) -> bool:
        return any(node.get("class_type") == "TrainHypernetwork" for node in workflow.values())
    return dict(sorted(workflows.items(), key=lambda item: not trains(item[1])))


def keep_trained(folder: Path, output: Path) -> list[Path]:
    """Copy what training saved (real files, not the links the job put there) out of the server's
    temporary base directory, before it is removed."""
    kept = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            target = output / "hypernetworks" / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            kept.append(target)
    return kept


def node_of(job, output: Path) -> tuple[str, dict]:
    """The node that wrote ``output`` (named ``<job>_<node id>_<index>.<ext>`` by the runner)."""
    node_id = output.name[len(job.name) + 1:].split("_")[0]
    return node_id, job.prompt.get(node_id, {})


def write_sheets(result: BatchResult, output: Path, summary: dict) -> None:
    rows, loss_graphs = [], []
    style_images = sorted(DATASET_DIR.glob("*.png"))
    style_pixels = [load_rgb(p) for p in style_images]
    for job_result in result.results:
        renders = []
        for path in job_result.outputs:
            node_id, node = node_of(job_result.job, path)
            if node.get("class_type") == LOSS_GRAPH:
                loss_graphs.append((job_result.job.name, path))
            else:
                label = str(node.get("inputs", {}).get("filename_prefix") or f"node {node_id}")
                renders.append((_graph_order(node_id), label, path, node_id))
        sweep = style_sweep(job_result.job.prompt, [(node_id, path) for *_x, path, node_id in renders], style_pixels)
        node_of_path = {path: node_id for *_x, path, node_id in renders}
        if len(sweep) > 1:  # a strength sweep: the style set, then one row per strength
            if "style_sweep" not in summary:  # the style set once, above the first sweep
                rows.append((f"{job_result.job.name}: the training set (style to learn)",
                             [(p.stem, p) for p in style_images]))
            summary.setdefault("style_sweep", sweep)
            summary.setdefault("style_sweeps", {})[job_result.job.name] = sweep
            rows.extend((f"{job_result.job.name}: strength {point['strength']:g}, style distance "
                         f"{point['style_distance']:.3f} (0 = the training set's colours)",
                         [(prompt_text_of(job_result.job.prompt, node_of_path[Path(p)]) or Path(p).name, Path(p))
                          for p in point["images"]])
                        for point in sweep)
            log.info("style sweep of %s: %s", job_result.job.name,
                     ", ".join(f"strength {p['strength']:g} -> {p['style_distance']:.3f}" for p in sweep))
        else:
            rows.append((job_result.job.name, [(label, path) for _o, label, path, _n in sorted(renders)]))
    if any(items for _t, items in rows):
        summary["contact_sheet"] = str(contact_sheet(rows, output / "contact_sheet.png"))
    for job_name, path in loss_graphs:
        target = output / ("loss_graph.png" if len(loss_graphs) == 1 else f"loss_graph_{job_name}.png")
        shutil.copy2(path, target)
        summary.setdefault("loss_graphs", []).append(str(target))


def _graph_order(node_id: str) -> tuple:
    # Save nodes in the order the workflow lists them (a sweep's strengths ascending, as authored).
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def log_summary(result: BatchResult, summary: dict) -> None:
    for line in result.summary_lines():
        log.info("%s", line)
    log.info("outputs in %s:", summary["output"])
    for r in result.results:
        log.info("  %-32s %-7s %6.1f s  %s", r.job.name, r.status, r.seconds, ", ".join(p.name for p in r.outputs))
    for key in ("contact_sheet", "loss_graphs", "trained_hypernetworks"):
        if summary.get(key):
            log.info("  %s: %s", key.replace("_", " "), summary[key])


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    args = parse_args(argv)
    # SIGTERM's default kills without unwinding; exit normally instead so the server is stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.perf_counter()
    summary: dict = {"ok": False}
    status = 2
    output = args.output.expanduser().resolve()
    try:
        result = run(args, summary)
        summary["jobs"] = [{"name": r.job.name, "status": r.status, "seconds": round(r.seconds, 2),
                            "server": r.server, "outputs": [str(p) for p in r.outputs], "error": r.error}
                           for r in result.results]
        write_sheets(result, output, summary)
        log_summary(result, summary)
        summary["ok"] = bool(result.results) and result.ok
        status = 0 if summary["ok"] else 1
    except (SetupError, BatchError, ServerError, OSError) as e:
        log.error("%s", e)
    except KeyboardInterrupt:
        log.error("interrupted")
        status = 130
    finally:
        summary["seconds"] = round(time.perf_counter() - started, 1)
        text = json.dumps(summary, indent=2) + "\n"
        atomic_write(output / "summary.json", lambda f: f.write(text.encode()))
    log.info("main job %s in %.0f s (exit %d); everything is in %s", "succeeded" if status == 0 else "FAILED",
             summary["seconds"], status, output)
    return status


if __name__ == "__main__":
    sys.exit(main())
