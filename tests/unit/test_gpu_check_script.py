"""scripts/gpu_check.sh without a GPU: argument handling, and the clean exit when there is no CUDA."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "gpu_check.sh"


@pytest.fixture
def comfy_tree(tmp_path) -> Path:
    """A folder shaped like a ComfyUI checkout (the script only checks the path before CUDA)."""
    (tmp_path / "comfy").mkdir()
    (tmp_path / "main.py").write_text("")
    return tmp_path


def _run(*args, comfyui: Path | None = None, hide_cuda: bool = True):
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("COMFYUI_PATH", None)
    if comfyui is not None:
        env["COMFYUI_PATH"] = str(comfyui)
    if hide_cuda:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120)


def test_without_cuda_it_says_so_and_exits_cleanly(comfy_tree):
    done = _run("--shapes", "sd15", "--dtypes", "bf16", comfyui=comfy_tree)
    assert done.returncode == 0, done.stderr
    assert "no CUDA device" in done.stderr and "nothing to check" in done.stderr


@pytest.mark.parametrize("args, message", [
    (("--shapes", "sd3"), "--shapes: sd3 not among sd15, sdxl"),
    (("--dtypes", "fp8"), "--dtypes: fp8 not among fp16, bf16, fp32"),
    (("--dtypes", ","), "--dtypes: nothing given"),
    (("--rounds", "0"), "--rounds must be at least 1"),
    (("--bogus",), "unrecognized arguments: --bogus"),
    (("--wheels",), "--wheels needs a folder"),
])
def test_bad_arguments_are_refused_before_anything_runs(comfy_tree, args, message):
    done = _run(*args, comfyui=comfy_tree)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_a_missing_comfyui_tree_is_named(tmp_path):
    done = _run(comfyui=tmp_path / "nowhere")
    assert done.returncode == 2 and f"no ComfyUI tree at {tmp_path / 'nowhere'}" in done.stderr


def test_an_empty_wheel_folder_is_refused(comfy_tree, tmp_path):
    done = _run("--wheels", str(tmp_path), comfyui=comfy_tree)
    assert done.returncode == 2 and "no wheels in" in done.stderr


def test_help_names_the_options():
    done = _run("--help")
    assert done.returncode == 0
    for option in ("--shapes", "--dtypes", "--rounds", "--skip-tests", "--skip-bench", "--out"):
        assert option in done.stdout


def test_the_table_has_one_line_per_step():
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(REPO_ROOT / "scripts"))
    rows = [gpu_check.Row("DynamicVRAM: LoRA + folded == exact", status="ok", result="rel err 1e-07", seconds=12),
            gpu_check.Row("apply: step time / plain", "sdxl", "bf16", "ok", "linear ours 1.002", 40)]
    lines = gpu_check.format_table(rows, "NVIDIA H200").splitlines()
    assert lines[0] == "GPU check on NVIDIA H200" and len(lines) == 4
    assert lines[1].split()[:1] == ["step"] and "sdxl" in lines[3] and lines[3].endswith("linear ours 1.002")
