"""The resume manifest and its lock (no server)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from batch_runner import BatchError, expand_jobs, parse_override
from batch_runner.manifest import Manifest, exclusive
from tests.batch.live import REPO_ROOT, blur_workflow


def two_jobs(radius: int = 2):
    return expand_jobs({"wf": blur_workflow(radius=radius)}, [parse_override("1.color=1,2")])


def test_done_needs_the_same_prompt_and_the_files(tmp_path):
    a, b = two_jobs()
    manifest = Manifest(tmp_path / "manifest.json", tmp_path)
    manifest.mark_queued(a, "http://s1", "p1")
    assert manifest.in_flight(a) == ("http://s1", "p1") and not manifest.is_done(a)
    (tmp_path / "wf__color=1_3_0.png").write_bytes(b"png")
    manifest.mark_done(a, "http://s1", "p1", ["wf__color=1_3_0.png"], 1.5)
    manifest.mark_failed(b, "node 2 (ImageBlur) failed: boom", "http://s2")

    reread = Manifest(tmp_path / "manifest.json", tmp_path)  # what a later run sees
    assert reread.is_done(a) and reread.in_flight(a) is None
    assert not reread.is_done(b) and reread.jobs[b.name]["error"] == "node 2 (ImageBlur) failed: boom"
    changed_a, _ = two_jobs(radius=3)  # same name, another prompt: due again
    assert changed_a.name == a.name and reread.entry(changed_a) is None and not reread.is_done(changed_a)
    (tmp_path / "wf__color=1_3_0.png").unlink()  # an output gone: due again
    assert not reread.is_done(a)
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["jobs"][a.name]["overrides"] == {"1.color": 1} and data["jobs"][a.name]["prompt_hash"] == a.prompt_hash


def test_unreadable_manifest_is_refused(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BatchError, match="cannot read the manifest"):
        Manifest(tmp_path / "manifest.json", tmp_path)


def test_one_runner_per_manifest_and_the_lock_dies_with_its_holder(tmp_path):
    path = tmp_path / "manifest.json"
    with exclusive(path):
        with pytest.raises(BatchError, match="another batch runner is using"):
            with exclusive(path):
                pass
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom batch_runner.manifest import exclusive\n"
                               f"with exclusive({str(path)!r}):\n print('held', flush=True); time.sleep(600)"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BatchError):
            with exclusive(path):
                pass
    finally:
        holder.kill()  # SIGKILL: no chance to unlock
        holder.wait(30)
    with exclusive(path):  # the kernel released it
        pass
