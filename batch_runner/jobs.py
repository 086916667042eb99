"""Workflows x overrides -> jobs: one prompt per point of the sweep grid, each with a name.

A job's name is the workflow's file stem followed by the swept values
(``demo__seed=3__strength=0.5``); fixed overrides apply to every job and stay out of the name.
Several sweeps combine as a cartesian product, the last ``--set`` varying fastest.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import re
from dataclasses import dataclass, field

from .errors import BatchError
from .overrides import Override, resolve_node

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")
_VALUE_CHARS = 40
_MAX_NAME = 160


@dataclass
class Job:
    name: str
    workflow: str  # the workflow's name (file stem)
    prompt: dict
    overrides: dict = field(default_factory=dict)  # "node_id.input" -> value, every override applied

    @property
    def prompt_hash(self) -> str:
        """Identifies what the job computes: the manifest redoes a job whose prompt changed."""
        text = json.dumps(self.prompt, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def expand_jobs(workflows: dict[str, dict], overrides: list[Override]) -> list[Job]:
    """Every job of the batch, in workflow order, then sweep order."""
    used = set()
    jobs: list[Job] = []
    for workflow_name, workflow in workflows.items():
        targets = []  # (override, node id) for the overrides that apply to this workflow
        for override in overrides:
            node_id = resolve_node(workflow, override.node, override.spec)
            if node_id is None:
                continue
            inputs = workflow[node_id].get("inputs", {})
            if override.input not in inputs:
                raise BatchError(f"--set {override.spec!r}: node {node_id} ({workflow[node_id]['class_type']}) of "
                                 f"workflow {workflow_name!r} has no input {override.input!r}; "
                                 f"its inputs: {', '.join(sorted(inputs)) or '(none)'}")
            _check_not_set_twice(targets, override, node_id)
            targets.append((override, node_id))
            used.add(override.spec)
        labels = _labels([(o, n) for o, n in targets if o.is_sweep])
        for combination in itertools.product(*(o.values for o, _ in targets)):
            prompt = copy.deepcopy(workflow)
            applied, name_parts = {}, [workflow_name]
            for (override, node_id), value in zip(targets, combination):
                prompt[node_id]["inputs"][override.input] = value
                applied[f"{node_id}.{override.input}"] = value
                if override.is_sweep:
                    name_parts.append(f"{labels[override.spec]}={_value_text(value)}")
            jobs.append(Job("__".join(name_parts), workflow_name, prompt, applied))
    unused = [o.spec for o in overrides if o.spec not in used]
    if unused:
        raise BatchError(f"--set {unused[0]!r}: no workflow has that node (by id, title or class_type)")
    _make_names_unique(jobs)
    return jobs


def _check_not_set_twice(targets: list[tuple[Override, str]], override: Override, node_id: str) -> None:
    for other, other_id in targets:
        if (other_id, other.input) == (node_id, override.input):
            raise BatchError(f"--set {override.spec!r} and --set {other.spec!r} set the same input "
                             f"(node {node_id}, {override.input!r})")


def _labels(swept: list[tuple[Override, str]]) -> dict[str, str]:
    """The input name, or ``node.input`` where two swept inputs share a name."""
    names = [o.input for o, _ in swept]
    return {o.spec: o.input if names.count(o.input) == 1 else f"{node_id}.{o.input}" for o, node_id in swept}


def _value_text(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return _UNSAFE.sub("_", text).strip("_")[:_VALUE_CHARS] or "_"


def _make_names_unique(jobs: list[Job]) -> None:
    # Values that differ only in characters a file name cannot hold would share a name; many sweeps
    # would make one too long for a file name (255 bytes, with "_<node>_<index>.png" still to come).
    for job in jobs:
        if len(job.name) > _MAX_NAME:
            job.name = f"{job.name[:_MAX_NAME - 9]}~{job.prompt_hash[:8]}"
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.name] = counts.get(job.name, 0) + 1
    for job in jobs:
        if counts[job.name] > 1:
            job.name = f"{job.name}~{job.prompt_hash[:8]}"
