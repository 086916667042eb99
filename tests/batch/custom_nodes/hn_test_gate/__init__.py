"""A test-only ComfyUI node that holds a job until the test lets it through: ``HNTestGate``.

The batch tests need a job that is certainly still running when they kill or interrupt
something; a job that is merely slow loses that race on a fast or idle machine. The gate is a
folder the test controls:

- ``waiting-<n>`` appears while a job waits at the gate (removed when it passes);
- ``ticket-*``: each file lets one job through (the job deletes it, so no two jobs use one);
- ``open``: every job passes.

A waiting job polls every 20 ms and honours ComfyUI's interrupt (Cancel, ``/interrupt``, a
runner's time limit). It gives up with an error after ``HN_TEST_GATE_TIMEOUT_S`` seconds (600),
so a test that forgets to open its gate fails instead of hanging. The servers of the batch tests
load this folder through ``--extra-model-paths-config`` (``tests/batch/live.py``).
"""
from __future__ import annotations

import itertools
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)
_POLL_S = 0.02
_count = itertools.count(1)


def _take_ticket(gate: Path) -> bool:
    for ticket in sorted(gate.glob("ticket-*")):
        try:
            ticket.unlink()
            return True
        except FileNotFoundError:  # another job took it first
            continue
    return False


class HNTestGate:
    """IMAGE in, the same IMAGE out, once the gate folder lets this job through."""

    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "wait"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "gate": ("STRING", {"default": ""})}}

    @classmethod
    def IS_CHANGED(cls, **_inputs):
        return float("nan")  # never cached: every job goes through the gate

    def wait(self, image, gate):
        import comfy.model_management

        gate = Path(gate)
        marker = gate / f"waiting-{os.getpid()}-{next(_count)}"
        marker.touch()
        deadline = time.monotonic() + float(os.environ.get("HN_TEST_GATE_TIMEOUT_S", "600"))
        try:
            while not ((gate / "open").exists() or _take_ticket(gate)):
                comfy.model_management.throw_exception_if_processing_interrupted()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the test never opened the gate {gate}")
                time.sleep(_POLL_S)
        finally:
            marker.unlink(missing_ok=True)
        log.info("passed the gate %s", gate)
        return (image,)


NODE_CLASS_MAPPINGS = {"HNTestGate": HNTestGate}
