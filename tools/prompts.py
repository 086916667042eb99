"""Running API-format workflows ("prompts") on a ComfyUI server and checking what they wrote.

API format is what ComfyUI's ``POST /prompt`` takes and what the frontend's "Export (API)" saves:
``{node_id: {"class_type": ..., "inputs": {name: value or [source_id, output_index]}}}``.
"""
from __future__ import annotations

import copy
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from batch_runner.comfy_errors import describe_failure, describe_refusal, succeeded
from batch_runner.errors import HttpError, ServerError
from batch_runner.server_process import ComfyServer

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class WorkflowError(RuntimeError):
    """A workflow was refused, failed in a node, timed out, or did not write its outputs."""


@dataclass
class WorkflowResult:
    name: str
    ok: bool
    seconds: float
    outputs: list[Path] = field(default_factory=list)
    error: str | None = None


def substitute_models(prompt: dict, checkpoint: str, hypernetwork: str, available_hypernetworks: set[str]) -> dict:
    """A copy of ``prompt`` that runs with the job's models.

    Every checkpoint loader gets ``checkpoint`` (the job runs its workflows on one checkpoint).
    A hypernetwork loader keeps its file when the server has it, else gets the demo ``hypernetwork``.
    """
    prompt = copy.deepcopy(prompt)
    for node_id, node in prompt.items():
        inputs = node.get("inputs", {})
        if isinstance(inputs.get("ckpt_name"), str) and inputs["ckpt_name"] != checkpoint:
            log.info("node %s (%s): ckpt_name %r -> %r", node_id, node["class_type"], inputs["ckpt_name"], checkpoint)
            inputs["ckpt_name"] = checkpoint
        if node["class_type"] == "LoadHypernetwork" and inputs.get("hypernetwork_name") not in available_hypernetworks:
            log.info("node %s: hypernetwork_name %r -> %r", node_id, inputs.get("hypernetwork_name"), hypernetwork)
            inputs["hypernetwork_name"] = hypernetwork
    return prompt


def missing_node_types(prompt: dict, object_info: dict) -> list[str]:
    return sorted({n["class_type"] for n in prompt.values() if n["class_type"] not in object_info})


def run_prompt(server: ComfyServer, prompt: dict, timeout: float, poll: float = 0.5) -> dict:
    """Queue ``prompt``, wait for it to finish, and return its history entry.

    Raises WorkflowError with ComfyUI's own account of the failure: validation errors per node,
    or the failing node, its type and the exception.
    """
    prompt_id = str(uuid.uuid4())
    try:
        answer = server.post_json("/prompt", {"prompt": prompt, "prompt_id": prompt_id, "client_id": "hn-main-job"})
    except HttpError as e:
        raise WorkflowError("ComfyUI refused the workflow:\n" + describe_refusal(e.json() or e.body, prompt)) from None
    if answer.get("node_errors"):
        # ComfyUI queues the outputs that did validate and drops the rest: for a job that is a failure.
        server.post_json("/queue", {"delete": [prompt_id]})
        raise WorkflowError("ComfyUI refused part of the workflow:\n" + describe_refusal(answer, prompt))
    deadline = time.monotonic() + timeout
    while True:
        server.check_alive()
        # ComfyUI adds the history entry when the prompt has finished, either way.
        entry = server.get_json(f"/history/{prompt_id}").get(prompt_id)
        if entry is not None:
            if succeeded(entry):
                return entry
            raise WorkflowError(describe_failure(entry))
        if time.monotonic() > deadline:
            server.post_json("/queue", {"delete": [prompt_id]})  # still waiting in the queue
            server.post_json("/interrupt", {})  # or running (only this job's prompts run here)
            raise WorkflowError(f"the workflow did not finish within {timeout:.0f} s (interrupted)")
        time.sleep(poll)


def saved_images(entry: dict, prompt: dict, output_dir: Path) -> list[Path]:
    """The image files every SaveImage node reported, checked on disk.

    Each SaveImage must report at least one PNG under its filename_prefix, and each must exist
    in ``output_dir`` and start with a PNG signature.
    """
    files = []
    outputs = entry.get("outputs", {})
    for node_id, node in prompt.items():
        if node["class_type"] != "SaveImage":
            continue
        images = outputs.get(node_id, {}).get("images", [])
        if not images:
            raise WorkflowError(f"SaveImage node {node_id} reported no images")
        prefix = Path(node["inputs"].get("filename_prefix", "ComfyUI")).name
        for image in images:
            path = output_dir / image.get("subfolder", "") / image["filename"]
            if image.get("type") != "output" or not path.name.startswith(prefix):
                raise WorkflowError(f"SaveImage node {node_id} reported an unexpected file: {image}")
            if not path.is_file():
                raise WorkflowError(f"SaveImage node {node_id} reported {path}, which does not exist")
            with open(path, "rb") as f:
                if f.read(8) != PNG_SIGNATURE:
                    raise WorkflowError(f"{path} is not a PNG file")
            files.append(path)
    return files


def run_workflow(server: ComfyServer, name: str, prompt: dict, output_dir: Path, timeout: float) -> WorkflowResult:
    """Run one workflow; never raises for a workflow failure, returns it in the result."""
    log.info("workflow %s: queued", name)
    t0 = time.perf_counter()
    try:
        entry = run_prompt(server, prompt, timeout)
        files = saved_images(entry, prompt, output_dir)
    except (WorkflowError, ServerError, OSError) as e:  # OSError: the server went away mid-request
        seconds = time.perf_counter() - t0
        log.error("workflow %s FAILED after %.1f s: %s", name, seconds, e)
        return WorkflowResult(name, False, seconds, error=str(e))
    seconds = time.perf_counter() - t0
    log.info("workflow %s: done in %.1f s, wrote %s", name, seconds, ", ".join(str(f) for f in files))
    return WorkflowResult(name, True, seconds, outputs=files)
