"""Build a Hypernetwork from parsed parts, checking every weight against the config.

Both file forms (A1111 .pt and our safetensors) end here, so every check lives in one place.
"""
from __future__ import annotations

from typing import Mapping

import torch

from ..network.config import HypernetworkConfig, HypernetworkInfo
from ..errors import HypernetworkError
from ..network.hypernetwork import Hypernetwork, HypernetworkModule

ROLE_NAMES = ("key", "value")


def assemble_network(path, config: HypernetworkConfig, info: HypernetworkInfo,
                     pair_states: Mapping[int, tuple[Mapping, Mapping]]) -> Hypernetwork:
    if not pair_states:
        raise HypernetworkError(path, "not a hypernetwork: it holds no layer weights")
    try:
        # Built on the meta device: every weight comes from the file, so none is allocated twice.
        net = Hypernetwork(pair_states.keys(), config, info, device="meta")
    except ValueError as exc:
        raise HypernetworkError(path, str(exc)) from None
    for dim, states in pair_states.items():
        for role, module, state in zip(ROLE_NAMES, net.pair(dim), states):
            load_module_state(path, module, state, f"dim {dim}, {role} MLP")
    return net


def load_module_state(path, module: HypernetworkModule, state: Mapping, where: str) -> None:
    """Copy `state` into `module` after checking keys, shapes, dtypes and finiteness."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing weights {missing}")
        if unexpected:
            parts.append(f"unexpected weights {unexpected}")
        raise HypernetworkError(path, f"{where}: {'; '.join(parts)} for {describe_structure_of(module)}")
    converted = {}
    for key, want in expected.items():
        tensor = state[key]
        if not isinstance(tensor, torch.Tensor):
            raise HypernetworkError(path, f"{where}: {key} is a {type(tensor).__name__}, not a tensor")
        if not tensor.is_floating_point():
            raise HypernetworkError(path, f"{where}: {key} has non-float dtype {tensor.dtype}")
        if tuple(tensor.shape) != tuple(want.shape):
            raise HypernetworkError(
                path, f"{where}: {key} has shape {list(tensor.shape)} but {describe_structure_of(module)} "
                      f"expects {list(want.shape)}")
        if not _all_finite(tensor):
            bad = "NaN" if torch.isnan(tensor).any() else "Inf"
            raise HypernetworkError(path, f"{where}: weights contain {bad} ({key})")
        converted[key] = _owned_fp32(tensor)
    module.load_state_dict(converted, strict=True, assign=True)


def describe_structure_of(module: HypernetworkModule) -> str:
    layers = ", ".join(type(layer).__name__ for layer in module.linear)
    return f"layer_structure {list(module.config.layer_structure)} ([{layers}]) at dim {module.dim}"


def _owned_fp32(tensor: torch.Tensor) -> torch.Tensor:
    """An fp32 tensor that owns its memory alone, so assigning it as a parameter aliases nothing."""
    if (tensor.dtype == torch.float32 and tensor.is_contiguous() and tensor.storage_offset() == 0
            and tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()):
        return tensor
    return tensor.to(dtype=torch.float32, copy=True).contiguous()


def _all_finite(tensor: torch.Tensor) -> bool:
    # A sum is NaN/Inf whenever any element is, and is ~20x cheaper than isfinite().all() on
    # large weights; only an overflowing sum of finite values needs the exact check.
    if torch.isfinite(tensor.sum(dtype=torch.float64)):
        return True
    return bool(torch.isfinite(tensor).all())
