"""GPU check: on a CUDA machine, everything the CPU suite cannot show, ending in one table.

In order, each step in its own process (so one failure or out-of-memory cannot hide the rest):

1. the DynamicVRAM check (scripts/gpu_dynamic_vram_check.py): a LoRA plus a folded hypernetwork
   through ModelPatcherDynamic equals the exact path;
2. the CUDA-marked tests (`pytest -m cuda`);
3. the apply benchmark (benchmarks/bench_inference.py) and the training benchmark
   (benchmarks/bench_train.py) for every shape (SD1.5, SDXL) and dtype (fp16, bf16) asked for.

Needs no network: it runs from this checkout against the ComfyUI tree in COMFYUI_PATH (or
--comfyui) with the Python it is started with. Without CUDA it says so and exits 0, doing nothing.
Exit status: 0 when every step that ran passed, 1 when one failed, 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
logger = logging.getLogger("gpu_check")
SHAPES = ("sd15", "sdxl")
DTYPES = ("fp16", "bf16")


@dataclass
class Row:
    """One line of the final table."""

    step: str
    shape: str = "-"
    dtype: str = "-"
    status: str = "?"
    result: str = ""
    seconds: float = 0.0


@dataclass
class Options:
    comfyui: Path
    shapes: tuple[str, ...]
    dtypes: tuple[str, ...]
    out: Path
    rounds: int
    step_timeout: float
    skip_tests: bool = False
    skip_bench: bool = False
    python: str = sys.executable
    env: dict = field(default_factory=dict)


def parse_args(argv=None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", type=Path, default=os.environ.get("COMFYUI_PATH") or None,
                        help="the ComfyUI tree (default: $COMFYUI_PATH, else .host/ComfyUI)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--dtypes", default=",".join(DTYPES), help="comma-separated, of fp16, bf16, fp32")
    parser.add_argument("--out", type=Path, default=None, help="folder for logs and JSON (default: a temp folder)")
    parser.add_argument("--rounds", type=int, default=3, help="benchmark rounds per variant (default 3)")
    parser.add_argument("--step-timeout", type=float, default=900, help="seconds per step before it is stopped")
    parser.add_argument("--skip-tests", action="store_true", help="no pytest -m cuda")
    parser.add_argument("--skip-bench", action="store_true", help="no benchmarks")
    args = parser.parse_args(argv)
    shapes = _choices(parser, "--shapes", args.shapes, SHAPES)
    dtypes = _choices(parser, "--dtypes", args.dtypes, ("fp16", "bf16", "fp32"))
    comfyui = Path(args.comfyui) if args.comfyui else REPO_ROOT / ".host" / "ComfyUI"
    if not (comfyui / "main.py").is_file() or not (comfyui / "comfy").is_dir():
        parser.error(f"no ComfyUI tree at {comfyui} (set COMFYUI_PATH or --comfyui)")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    out = args.out or Path(os.environ.get("TMPDIR", "/tmp")) / f"hn-gpu-check-{os.getpid()}"
    return Options(comfyui=comfyui.resolve(), shapes=shapes, dtypes=dtypes, out=out, rounds=args.rounds,
                   step_timeout=args.step_timeout, skip_tests=args.skip_tests, skip_bench=args.skip_bench)


def _choices(parser, flag: str, text: str, allowed) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    wrong = [v for v in values if v not in allowed]
    if not values or wrong:
        parser.error(f"{flag}: {', '.join(wrong) or 'nothing given'} not among {', '.join(allowed)}")
    return values


def cuda_device() -> str | None:
    """The CUDA device's name, or None when torch sees none."""
    import torch

    if not torch.cuda.is_available():
        return None
    return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda})"


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="[gpu_check] %(message)s")
    options = parse_args(argv)
    device = cuda_device()
    if device is None:
        import torch

        logger.info("no CUDA device: torch %s sees none, so there is nothing to check on this machine. "
                    "Run scripts/gpu_check.sh on a machine with an NVIDIA GPU.", torch.__version__)
        return 0
    options.out.mkdir(parents=True, exist_ok=True)
    options.env = {**os.environ, "COMFYUI_PATH": str(options.comfyui), "PYTHONUNBUFFERED": "1"}
    logger.info("%s; ComfyUI %s; logs in %s", device, options.comfyui, options.out)
    rows = [dynamic_vram_step(options)]
    if not options.skip_tests:
        rows.append(cuda_tests_step(options))
    if not options.skip_bench:
        for shape in options.shapes:
            for dtype in options.dtypes:
                rows.append(apply_bench_step(options, shape, dtype))
                rows.append(train_bench_step(options, shape, dtype))
    print(format_table(rows, device), flush=True)
    return 1 if any(row.status == "FAIL" for row in rows) else 0


def _run(options: Options, name: str, command: list[str]) -> tuple[int, float]:
    log = options.out / f"{name}.log"
    logger.info("%s: %s", name, " ".join(command))
    start = time.perf_counter()
    with open(log, "w") as sink:
        try:
            rc = subprocess.run(command, cwd=REPO_ROOT, env=options.env, stdout=sink, stderr=subprocess.STDOUT,
                                timeout=options.step_timeout).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    seconds = time.perf_counter() - start
    if rc:
        logger.info("%s: exit %d after %.0f s; last lines of %s:\n%s", name, rc, seconds, log, _tail(log))
    return rc, seconds


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def dynamic_vram_step(options: Options) -> Row:
    result_file = options.out / "dynamic_vram.json"
    rc, seconds = _run(options, "dynamic_vram", [options.python, "scripts/gpu_dynamic_vram_check.py",
                                                 "--json", str(result_file)])
    row = Row("DynamicVRAM: LoRA + folded == exact", seconds=seconds)
    if not result_file.is_file():
        row.status, row.result = "FAIL", f"exit {rc}, no result (see dynamic_vram.log)"
        return row
    result = json.loads(result_file.read_text())
    if result["status"] == "skipped":
        row.status, row.result = "skip", result["reason"]
        return row
    errors = result["errors"]
    row.status = "ok" if result["status"] == "ok" else "FAIL"
    row.result = (f"rel err {max(errors['lora+hn'], errors['hn+lora']):.1e}, LoRA effect {errors['lora effect']:.1e}, "
                  f"dynamic route {'taken' if result['dynamic_route_taken'] else 'NOT taken'}")
    return row


def cuda_tests_step(options: Options) -> Row:
    report = options.out / "cuda_tests.xml"
    rc, seconds = _run(options, "cuda_tests", [options.python, "-m", "pytest", "-m", "cuda", "-q",
                                               f"--junitxml={report}"])
    row = Row("pytest -m cuda", seconds=seconds)
    counts = _junit_counts(report)
    row.result = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no result"
    row.status = "ok" if rc == 0 else ("skip" if rc == 5 else "FAIL")  # 5: no test selected
    return row


def _junit_counts(report: Path) -> dict[str, int]:
    import xml.etree.ElementTree as ET

    if not report.is_file():
        return {}
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total = int(suite.get("tests", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped = int(suite.get("skipped", 0))
    return {"passed": total - failed - skipped, "failed": failed, "skipped": skipped}


def _bench_row(options: Options, name: str, title: str, shape: str, dtype: str, command: list[str],
               summarise) -> Row:
    """Run one benchmark (it writes ``<name>.json``) and summarise its JSON into a table row."""
    result_file = options.out / f"{name}.json"
    rc, seconds = _run(options, name, [options.python, *command, "--json", str(result_file)])
    row = Row(title, shape, dtype, seconds=seconds)
    if rc or not result_file.is_file():
        row.status, row.result = "FAIL", f"exit {rc} (see {name}.log)"
        return row
    row.status, row.result = "ok", summarise(json.loads(result_file.read_text()))
    return row


def apply_bench_step(options: Options, shape: str, dtype: str) -> Row:
    def summarise(result: dict) -> str:
        return "; ".join(f"{name.split(':')[0].split()[-1]} {name.split(': ')[1]} {ratio:.3f}"
                         for name, ratio in result["ratio_to_plain"].items() if name != "plain")

    return _bench_row(options, f"apply_{shape}_{dtype}", "apply: step time / plain", shape, dtype,
                      ["benchmarks/bench_inference.py", "--shape", shape, "--dtype", dtype,
                       "--rounds", str(options.rounds), "--patch-rounds", str(options.rounds)], summarise)


def train_bench_step(options: Options, shape: str, dtype: str) -> Row:
    def summarise(result: dict) -> str:
        return "; ".join(f"{mode} {run['ratio_to_floor']:.3f} ({run['median_s']['ours']:.3f} s)"
                         for mode, run in result["runs"].items())

    return _bench_row(options, f"train_{shape}_{dtype}", "train: step time / floor", shape, dtype,
                      ["benchmarks/bench_train.py", "--kind", shape, "--dtype", dtype,
                       "--repeats", str(options.rounds)], summarise)


def format_table(rows: list[Row], device: str) -> str:
    header = ("step", "shape", "dtype", "status", "seconds", "result")
    cells = [header] + [(r.step, r.shape, r.dtype, r.status, f"{r.seconds:.0f}", r.result) for r in rows]
    widths = [max(len(str(line[i])) for line in cells) for i in range(len(header) - 1)]
    lines = [f"GPU check on {device}"]
    for line in cells:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(line[:-1], widths)) + "  " + line[-1])
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
