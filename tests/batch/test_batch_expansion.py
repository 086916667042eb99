"""--set overrides and sweeps expanded into jobs (no server)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from batch_runner import BatchError, expand_jobs, load_named_workflows, parse_override
from tests.batch.live import REPO_ROOT, blur_workflow, write_workflow


def values(spec: str) -> tuple:
    return parse_override(spec).values


def test_value_syntax():
    assert values("3.inputs.seed=42") == (42,)
    assert values("3.seed=0.5") == (0.5,)
    assert values("3.flag=true") == (True,)
    assert values("7.sampler_name=euler") == ("euler",)
    assert values('6.text="a, b"') == ("a, b",)  # a JSON string keeps its comma
    assert values('4.model=["4", 0]') == (["4", 0],)  # a JSON list is one value (a link)
    assert values("5.strength=0,0.5,1") == (0, 0.5, 1)
    assert values("7.sampler_name=euler, dpmpp_2m") == ("euler", "dpmpp_2m")
    assert values("3.seed=1..4") == (1, 2, 3, 4)
    assert values("3.seed=0..10:5") == (0, 5, 10)
    assert values("5.strength=0..1:0.25") == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert values("5.strength=0..0.3:0.1") == (0.0, 0.1, 0.2, 0.3)  # exact decimal steps, end included
    assert values("3.seed=-2..0") == (-2, -1, 0)


def test_addresses():
    o = parse_override("My.Title.inputs.text=x")
    assert (o.node, o.input) == ("My.Title", "text")
    o = parse_override("KSampler.seed=1")
    assert (o.node, o.input) == ("KSampler", "seed")


@pytest.mark.parametrize("spec, message", [
    ("seed=1", "expected NODE.inputs.NAME=VALUE"),
    ("3.inputs.seed", "expected NODE.inputs.NAME=VALUE"),
    ("3.seed=1,1", "same value twice"),
    ("3.seed=5..1", "runs upwards"),
    ("3.seed=1..5:0", "runs upwards"),
])
def test_bad_overrides(spec, message):
    with pytest.raises(BatchError, match=message):
        parse_override(spec)


def expand(workflows: dict, *specs: str):
    return expand_jobs(workflows, [parse_override(s) for s in specs])


def test_cartesian_product_in_order_with_names():
    jobs = expand({"wf": blur_workflow()}, "1.inputs.color=1..2", "ImageBlur.sigma=0.5,1", "3.filename_prefix=x")
    assert [j.name for j in jobs] == ["wf__color=1__sigma=0.5", "wf__color=1__sigma=1",
                                      "wf__color=2__sigma=0.5", "wf__color=2__sigma=1"]
    assert [(j.prompt["1"]["inputs"]["color"], j.prompt["2"]["inputs"]["sigma"]) for j in jobs] == [
        (1, 0.5), (1, 1), (2, 0.5), (2, 1)]
    # A fixed value applies to every job and stays out of the name.
    assert all(j.prompt["3"]["inputs"]["filename_prefix"] == "x" for j in jobs)
    assert jobs[0].overrides == {"1.color": 1, "2.sigma": 0.5, "3.filename_prefix": "x"}
    assert len({j.prompt_hash for j in jobs}) == 4
    # The workflow itself is left alone.
    assert blur_workflow()["1"]["inputs"]["color"] == 0


def test_no_overrides_one_job_per_workflow():
    jobs = expand({"a": blur_workflow(), "b": blur_workflow(8)})
    assert [j.name for j in jobs] == ["a", "b"] and jobs[1].prompt["1"]["inputs"]["width"] == 8


def test_nodes_by_title_and_class_type():
    [job] = expand({"wf": blur_workflow()}, "Canvas.width=32", "SaveImage.filename_prefix=p")
    assert job.prompt["1"]["inputs"]["width"] == 32 and job.prompt["3"]["inputs"]["filename_prefix"] == "p"


def test_ambiguous_and_unknown_nodes_and_inputs():
    wf = blur_workflow()
    wf["4"] = {"class_type": "ImageBlur", "inputs": {"image": ["2", 0], "blur_radius": 1, "sigma": 1.0}}
    with pytest.raises(BatchError, match=r"2 nodes have the class_type 'ImageBlur' \(ids 2, 4\)"):
        expand({"wf": wf}, "ImageBlur.sigma=1")
    with pytest.raises(BatchError, match="no workflow has that node"):
        expand({"wf": wf}, "KSampler.seed=1")
    with pytest.raises(BatchError, match=r"node 2 \(ImageBlur\) of workflow 'wf' has no input 'sigmaa'; its inputs: blur_radius, image, sigma"):
        expand({"wf": wf}, "2.sigmaa=1")
    with pytest.raises(BatchError, match="set the same input"):
        expand({"wf": wf}, "2.sigma=1", "2.inputs.sigma=2")


def test_override_applies_where_the_node_exists():
    other = {"9": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}}
    jobs = expand({"blur": blur_workflow(), "other": other}, "2.blur_radius=1,3")
    assert [j.name for j in jobs] == ["blur__blur_radius=1", "blur__blur_radius=3", "other"]


def test_names_stay_file_safe_and_unique():
    jobs = expand({"wf": blur_workflow()}, "3.filename_prefix=a/b,a b")
    names = [j.name for j in jobs]
    assert len(set(names)) == 2 and all(n.startswith("wf__filename_prefix=a_b~") for n in names)
    assert all("/" not in n and " " not in n for n in names)


def test_long_names_are_cut_and_stay_unique():
    jobs = expand({"w" * 80: blur_workflow()}, "3.filename_prefix=" + ",".join("x" * 39 + str(i) for i in range(3)),
                  "Canvas.width=1,2", "Canvas.height=1,2", "Canvas.batch_size=1,2", "Canvas.color=1,2")
    names = [j.name for j in jobs]
    assert len(set(names)) == len(names) == 48 and max(map(len, names)) == 160
    assert all(n.startswith("w" * 80 + "__filename_prefix=") and n[-9] == "~" for n in names)


def test_shared_input_names_are_labelled_with_the_node():
    wf = blur_workflow()
    wf["4"] = {"class_type": "ImageBlur", "inputs": {"image": ["2", 0], "blur_radius": 1, "sigma": 1.0}}
    names = [j.name for j in expand({"wf": wf}, "2.sigma=1,2", "4.sigma=3")]
    assert names == ["wf__sigma=1", "wf__sigma=2"]
    names = [j.name for j in expand({"wf": wf}, "2.sigma=1,2", "4.sigma=3,4")]
    assert names[0] == "wf__2.sigma=1__4.sigma=3"


def test_workflow_files_and_folders(tmp_path):
    a = write_workflow(tmp_path / "flows", "a", blur_workflow())
    write_workflow(tmp_path / "flows", "b", blur_workflow())
    assert list(load_named_workflows([tmp_path / "flows"])) == ["a", "b"]
    with pytest.raises(BatchError, match="two workflows are named 'a'"):
        load_named_workflows([tmp_path / "flows", a])
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"nodes": [], "links": []}))
    with pytest.raises(BatchError, match="not an API-format workflow.*Export \\(API\\)"):
        load_named_workflows([ui])


def test_cli_dry_run_lists_the_jobs(tmp_path):
    wf = write_workflow(tmp_path, "wf", blur_workflow())
    proc = subprocess.run([sys.executable, "-m", "batch_runner", str(wf), "--set", "1.inputs.color=1..3", "--dry-run"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["wf__color=1 1.color=1", "wf__color=2 1.color=2", "wf__color=3 1.color=3"]
    bad = subprocess.run([sys.executable, "-m", "batch_runner", str(wf), "--set", "9.seed=1", "--dry-run"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no workflow has that node" in bad.stderr


def test_cli_help_documents_the_syntax_and_imports_no_torch():
    proc = subprocess.run([sys.executable, "-c", "import sys, runpy; sys.argv = ['x', '--help']\n"
                           "try:\n runpy.run_module('batch_runner', run_name='__main__')\n"
                           "except SystemExit: pass\n"
                           "print('TORCH' if 'torch' in sys.modules or 'comfy' in sys.modules else 'LIGHT')"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert "NODE.inputs.NAME=VALUE" in proc.stdout and "1..8" in proc.stdout and "0,0.5,1" in proc.stdout
    assert proc.stdout.strip().endswith("LIGHT")
