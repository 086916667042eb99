"""Optimizer state that travels with a trained network, so training can continue where it stopped.

In a graph the state rides along with the network object (`attach_optimizer_state`); on disk it
is A1111's ``<file>.optim`` sidecar. A1111 orders the optimizer's parameters by the dims' order
in the file, which need not be sorted; `align_optimizer_state` maps its entries onto our
(sorted) order by their shapes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import weakref
from dataclasses import dataclass

import torch

from ..formats.files import load_hypernetwork, save_hypernetwork
from ..network.hypernetwork import Hypernetwork
from ..formats.optimizer_sidecar import load_optimizer_state, save_optimizer_state, sidecar_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OptimizerState:
    name: str  # torch.optim class name, as A1111 stores it ("AdamW")
    state_dict: dict


_attached: "weakref.WeakKeyDictionary[Hypernetwork, OptimizerState]" = weakref.WeakKeyDictionary()


def attach_optimizer_state(network: Hypernetwork, state: OptimizerState | None) -> None:
    if state is None:
        _attached.pop(network, None)
    else:
        _attached[network] = state


def attached_optimizer_state(network: Hypernetwork) -> OptimizerState | None:
    return _attached.get(network)


def read_optimizer_sidecar(path) -> OptimizerState | None:
    """The `.optim` beside `path`, when there is one saved for this exact version of the file."""
    data = load_optimizer_state(path)
    if data is None:
        return None
    return OptimizerState(str(data["optimizer_name"]), data["optimizer_state_dict"])


def load_for_resume(path) -> Hypernetwork:
    """Load a hypernetwork with its sidecar's optimizer state attached (when it has one)."""
    network = load_hypernetwork(path)
    attach_optimizer_state(network, read_optimizer_sidecar(path))
    return network


def save_with_optimizer_state(network: Hypernetwork, path, state: OptimizerState | None) -> bool:
    """Write the network (atomically) and, with `state`, its `.optim` sidecar.

    The sidecar is written second and names the new file's hash, so a crash in between leaves a
    sidecar that is ignored rather than one that resumes the wrong weights. Without `state`, a
    sidecar left from an earlier version of the file is removed. Returns whether one was written.
    """
    save_hypernetwork(network, path)
    if state is None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(sidecar_path(path))
        return False
    save_optimizer_state(path, state.name, state.state_dict)
    return True


def align_optimizer_state(state_dict: dict, network: Hypernetwork) -> dict | None:
    """`state_dict` re-keyed to `network.parameters()` order, or None when it does not fit."""
    params = list(network.parameters())
    groups = state_dict.get("param_groups")
    state = state_dict.get("state")
    if not isinstance(groups, list) or len(groups) != 1 or not isinstance(state, dict):
        return None
    saved_ids = list(groups[0].get("params", []))
    if len(saved_ids) != len(params):
        return None
    if _shapes_fit(state, saved_ids, params):
        return state_dict
    # A1111 order: dims as they appear in its file. Each dim contributes the same number of
    # parameters (key MLP, then value MLP); the first is a Linear weight [out, dim].
    dims = network.dims
    per_dim = len(params) // len(dims)
    chunks = [saved_ids[i * per_dim:(i + 1) * per_dim] for i in range(len(dims))]
    by_dim = {}
    for chunk in chunks:
        shape = _state_shape(state.get(chunk[0]))
        if shape is None or len(shape) != 2:
            return None
        by_dim[shape[1]] = chunk
    if sorted(by_dim) != sorted(dims):
        return None
    reordered = [saved_id for dim in dims for saved_id in by_dim[dim]]
    if not _shapes_fit(state, reordered, params):
        return None
    return {
        "state": {index: state[saved_id] for index, saved_id in enumerate(reordered) if saved_id in state},
        "param_groups": [{**groups[0], "params": list(range(len(params)))}],
    }


def _shapes_fit(state: dict, saved_ids: list, params: list[torch.Tensor]) -> bool:
    for saved_id, param in zip(saved_ids, params):
        shape = _state_shape(state.get(saved_id))
        if shape is not None and shape != tuple(param.shape):
            return False
    return True


def _state_shape(param_state) -> tuple[int, ...] | None:
    """The shape of a parameter, read from its optimizer state (exp_avg, momentum_buffer, ...)."""
    if not isinstance(param_state, dict):
        return None
    for value in param_state.values():
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            return tuple(value.shape)
    return None


def copy_for_training(network: Hypernetwork, **info_changes) -> Hypernetwork:
    """A private copy to train: same structure and weights (ordinary fp32 tensors, even when the
    source was loaded under inference mode), its own info; the source is never changed."""
    info = dataclasses.replace(network.info, extra=dict(network.info.extra), **info_changes)
    with torch.inference_mode(False):
        copy = Hypernetwork(network.dims, network.config, info)
        copy.load_state_dict({k: v.detach().to("cpu", torch.float32) for k, v in network.state_dict().items()})
    return copy
