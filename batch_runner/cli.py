"""``python -m batch_runner``: the command line of the batch runner."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from contextlib import ExitStack
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from .embedded_server import embedded_server
from .errors import BatchError, ServerError
from .jobs import expand_jobs
from .overrides import parse_override
from .runner import run_batch
from .workflows import load_named_workflows

log = logging.getLogger("batch_runner")

DESCRIPTION = """\
Run API-format ComfyUI workflows as a batch: overrides and sweeps expand into jobs, jobs are
spread over one or more ComfyUI servers, every output image is downloaded into the output folder
as <job>_<node>_<index>.png, and a manifest there lets an interrupted batch resume without redoing
finished jobs. With no --server, a headless ComfyUI with this pack is started on 127.0.0.1 for the
batch and stopped afterwards."""

EPILOG = """\
--set syntax (repeatable):  NODE.inputs.NAME=VALUE  or  NODE.NAME=VALUE
  NODE   a node id (3), or a node title or class_type (KSampler) that names one node
  VALUE  JSON where it parses:        42   0.5   true   '"a, b"'   '["4", 0]'
         a range, ends included:      1..8   0..1:0.25
         a comma list:                0,0.5,1   euler,dpmpp_2m
         else the text as written:    euler
  A range or a list is a sweep: one job per value; several sweeps combine (cartesian product).
  A --set applies to every workflow that has the node; each must apply to at least one.

examples:
  python -m batch_runner wf.json --server http://127.0.0.1:8188 --set 3.inputs.seed=1..8
  python -m batch_runner wf.json --server URL1 --server URL2 \\
      --set ApplyHypernetwork.strength=0,0.5,1 --set KSampler.seed=1,2 --output out/sweep
  python -m batch_runner wf.json --checkpoint model.safetensors --hypernetwork hn.pt   (embedded ComfyUI)

exit status: 0 every job done, 1 a job failed, 2 the batch could not start, 130 interrupted."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m batch_runner", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workflows", nargs="+", type=Path, metavar="WORKFLOW",
                   help="API-format workflow JSON file, or a folder of them (job names start with the file stem)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.inputs.NAME=VALUE",
                   help="set or sweep a node input (syntax below)")
    p.add_argument("--server", dest="servers", action="append", default=[], metavar="URL",
                   help="a ComfyUI server, e.g. http://127.0.0.1:8188; repeat to spread jobs over several")
    p.add_argument("--output", type=Path, default=Path("batch_output"), metavar="DIR",
                   help="where images and the manifest go (default: ./batch_output)")
    p.add_argument("--manifest", type=Path, default=None, metavar="FILE",
                   help="the resume manifest (default: DIR/manifest.json)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="cancel a job that runs longer than this (default: no limit)")
    p.add_argument("--poll", action="store_true",
                   help="follow jobs by polling /history instead of the websocket")
    p.add_argument("--poll-interval", type=float, default=0.5, metavar="SECONDS", help=argparse.SUPPRESS)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    p.add_argument("--dry-run", action="store_true", help="list the jobs and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    embedded = p.add_argument_group("embedded server (used when no --server is given)")
    embedded.add_argument("--comfyui", type=Path, default=None, metavar="DIR",
                          help="the ComfyUI tree to run (default: $COMFYUI_PATH, else .host/ComfyUI)")
    embedded.add_argument("--checkpoint", action="append", default=[], type=Path, metavar="FILE",
                          help="a checkpoint to offer in models/checkpoints (repeatable)")
    embedded.add_argument("--hypernetwork", action="append", default=[], type=Path, metavar="FILE",
                          help="a hypernetwork to offer in models/hypernetworks (repeatable)")
    embedded.add_argument("--input", type=Path, default=None, metavar="DIR",
                          help="a folder to serve as ComfyUI's input directory (LoadImage)")
    embedded.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                          help="an extra argument for ComfyUI's main.py, e.g. --server-arg=--disable-metadata")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    # SIGTERM's default kills without unwinding; exit normally instead so an embedded server is stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        jobs = expand_jobs(load_named_workflows(args.workflows), [parse_override(s) for s in args.overrides])
        if args.dry_run:
            for job in jobs:
                print(job.name, " ".join(f"{k}={v!r}" for k, v in job.overrides.items()))
            return 0
        log.info("%d jobs from %d workflow(s)", len(jobs), len({j.workflow for j in jobs}))
        with ExitStack() as stack:
            stack.enter_context(logging_redirect_tqdm())  # log lines above the progress bar, not through it
            servers = args.servers
            if not servers:
                server = stack.enter_context(embedded_server(
                    comfy_root=args.comfyui, checkpoints=args.checkpoint, hypernetworks=args.hypernetwork,
                    input_dir=args.input, extra_args=args.server_arg,
                    log_path=args.output.resolve() / "comfyui-embedded.log"))
                servers = [server.url]
            result = run_batch(jobs, servers, args.output, args.manifest, use_websocket=not args.poll,
                               poll_interval=args.poll_interval, timeout=args.timeout,
                               show_progress=False if args.no_progress else None)
    except (BatchError, ServerError) as e:
        log.error("%s", e)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted; run the same command again to resume")
        return 130
    for line in result.summary_lines():
        (log.info if line[0].isdigit() else log.error)("%s", line)
    log.info("outputs in %s", args.output.resolve())
    return 0 if result.ok else 1
