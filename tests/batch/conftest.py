"""Batch runner tests: real ComfyUI servers on 127.0.0.1, started once per test module.

The workflows are made of ComfyUI core nodes that need no model (``live.py``), so a job costs
well under a second, or a few seconds where a test needs one still running to kill something.
"""
from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: runs a real ComfyUI server subprocess (minutes; deselect with -m 'not e2e')")
