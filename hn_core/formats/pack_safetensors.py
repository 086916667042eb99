"""The pack's safetensors form of a hypernetwork: no pickle, so nothing can run on load.

Layout (documented in the README):
- tensor keys: ``<dim>.<role>.<A1111 state-dict key>`` with role ``key`` or ``value``,
  e.g. ``768.key.linear.0.weight``, ``1280.value.linear.3.bias``;
- header metadata (``__metadata__``, string to string): ``format`` = ``a1111-hypernetwork``,
  ``format_version`` = ``1``, and every A1111 metadata field under its A1111 name, JSON-encoded
  (``layer_structure`` = ``[1, 2, 1]``, ``activation_func`` = ``"relu"``, ``step`` = ``2000``,
  ``optional_info`` = ``null`` ...), plus ``extra``: a JSON object of any other plain metadata.
"""
from __future__ import annotations

import json
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from .assemble import ROLE_NAMES, assemble_network
from ..atomic_write import atomic_write
from ..network.config import HypernetworkConfig, HypernetworkInfo
from ..errors import HypernetworkError
from .a1111_pt import CONFIG_KEYS, INFO_KEYS
from ..network.hypernetwork import Hypernetwork

FORMAT_NAME = "a1111-hypernetwork"
FORMAT_VERSION = "1"


def write_safetensors(net: Hypernetwork, path) -> None:
    tensors = {}
    for dim in net.dims:
        for role, module in zip(ROLE_NAMES, net.pair(dim)):
            for key, tensor in module.state_dict().items():
                tensors[f"{dim}.{role}.{key}"] = tensor.detach().to("cpu", copy=True).contiguous()
    fields = {**{k: getattr(net.config, k) for k in CONFIG_KEYS}, **{k: getattr(net.info, k) for k in INFO_KEYS}}
    metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION}
    metadata.update({k: json.dumps(v, ensure_ascii=False) for k, v in fields.items()})
    metadata["extra"] = json.dumps(net.info.extra, ensure_ascii=False)
    blob = save(tensors, metadata=metadata)
    atomic_write(path, lambda f: f.write(blob))


def read_safetensors(path) -> Hypernetwork:
    metadata = _read_metadata(path)
    try:
        tensors = load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise HypernetworkError(path, f"corrupt or truncated safetensors file ({exc})") from None
    if metadata.get("format") != FORMAT_NAME:
        raise HypernetworkError(path, "not a hypernetwork: " + _guess_kind(tensors))
    fields = _decode_fields(path, metadata)
    try:
        config = HypernetworkConfig(**{k: fields[k] for k in CONFIG_KEYS if k in fields})
    except (ValueError, TypeError) as exc:
        raise HypernetworkError(path, str(exc)) from None
    try:
        info = HypernetworkInfo(**{k: fields[k] for k in INFO_KEYS if k in fields}, extra=fields.get("extra") or {})
    except (ValueError, TypeError) as exc:
        raise HypernetworkError(path, f"metadata: {exc}") from None
    return assemble_network(path, config, info, _split_tensors(path, tensors))


def _read_metadata(path) -> dict[str, str]:
    try:
        with safe_open(path, framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise HypernetworkError(path, f"corrupt or truncated safetensors file ({exc})") from None


def _decode_fields(path, metadata: dict[str, str]) -> dict[str, Any]:
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise HypernetworkError(path, f"unsupported {FORMAT_NAME} format_version {version!r} "
                                      f"(this pack reads {FORMAT_VERSION})")
    fields = {}
    for key in (*CONFIG_KEYS, *INFO_KEYS, "extra"):
        if key in metadata:
            try:
                fields[key] = json.loads(metadata[key])
            except json.JSONDecodeError:
                raise HypernetworkError(path, f"metadata {key} is not valid JSON: {metadata[key]!r}") from None
    return fields


def _split_tensors(path, tensors: dict[str, torch.Tensor]) -> dict[int, tuple[dict, dict]]:
    pairs: dict[int, tuple[dict, dict]] = {}
    for name, tensor in tensors.items():
        dim_text, _, rest = name.partition(".")
        role, _, key = rest.partition(".")
        if not dim_text.isdigit() or role not in ROLE_NAMES or not key:
            raise HypernetworkError(path, f"unexpected tensor name {name!r} "
                                          f"(expected '<dim>.key.<name>' or '<dim>.value.<name>')")
        pair = pairs.setdefault(int(dim_text), ({}, {}))
        pair[ROLE_NAMES.index(role)][key] = tensor
    return pairs


def _guess_kind(tensors: dict) -> str:
    keys = list(tensors)
    if any("lora" in k.lower() for k in keys):
        return "this looks like a LoRA"
    if any(k.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.")) for k in keys):
        return "this looks like a Stable Diffusion checkpoint"
    return f"no '{FORMAT_NAME}' format marker in the header (keys: {keys[:8]})"
