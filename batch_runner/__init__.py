"""The batch runner: API-format workflows x overrides/sweeps -> jobs, spread over ComfyUI servers
over HTTP and the websocket, outputs downloaded, a manifest for resuming. ``python -m batch_runner``.

Talks HTTP only: nothing here imports ComfyUI or torch (an embedded server runs as a subprocess).
"""
from .base_dir import BaseDir, link_into, prepare_base_dir
from .embedded_server import embedded_server, find_comfyui
from .errors import BatchError, HttpError, JobFailed, ServerError, ServerLost
from .jobs import Job, expand_jobs
from .overrides import Override, parse_override
from .results import BatchResult, JobResult, ServerLoss
from .runner import run_batch, run_batch_async
from .server_process import ComfyServer, free_port, server_env
from .workflows import load_api_workflow, load_api_workflows, load_named_workflows

__all__ = [
    "BaseDir", "BatchError", "BatchResult", "ComfyServer", "HttpError", "Job", "JobFailed", "JobResult",
    "Override", "ServerError", "ServerLoss", "ServerLost", "embedded_server", "expand_jobs", "find_comfyui",
    "free_port", "link_into", "load_api_workflow", "load_api_workflows", "load_named_workflows",
    "parse_override", "prepare_base_dir", "run_batch", "run_batch_async", "server_env",
]
