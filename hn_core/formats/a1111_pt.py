"""A1111's hypernetwork `.pt` form: one pickled dict of dim -> (key, value) state dicts + metadata.

The reader accepts everything A1111 (and ComfyUI's built-in loader) accepts: pairs as list or
tuple, int or numeric-string dim keys, NovelAI's legacy `linear1`/`linear2` names, missing
metadata (A1111's defaults). The writer produces what A1111's own `save` writes, readable
with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping

import torch

from .assemble import assemble_network
from ..atomic_write import atomic_write
from ..network.config import HypernetworkConfig, HypernetworkInfo
from ..errors import HypernetworkError
from ..network.hypernetwork import Hypernetwork
from .safe_torch_load import load_pickle_safely

CONFIG_KEYS = ("layer_structure", "activation_func", "is_layer_norm", "weight_initialization",
               "use_dropout", "dropout_structure", "activate_output", "last_layer_dropout")
INFO_KEYS = ("name", "step", "sd_checkpoint", "sd_checkpoint_name", "optional_info")

# A1111's value for a key the file does not carry.
A1111_DEFAULTS: dict[str, Any] = {
    "layer_structure": [1, 2, 1],
    "activation_func": None,
    "is_layer_norm": False,
    "weight_initialization": "Normal",
    "use_dropout": False,
    "dropout_structure": None,
    "activate_output": True,
    "last_layer_dropout": False,
}

# NovelAI's original files name their two Linears like this.
LEGACY_KEY_NAMES = {
    "linear1.weight": "linear.0.weight",
    "linear1.bias": "linear.0.bias",
    "linear2.weight": "linear.1.weight",
    "linear2.bias": "linear.1.bias",
}


def read_a1111(path) -> Hypernetwork:
    raw = load_pickle_safely(path)
    return network_from_a1111_dict(raw, path)


def write_a1111(net: Hypernetwork, path) -> None:
    data = network_to_a1111_dict(net)
    atomic_write(path, lambda f: torch.save(data, f))


def dim_of_key(key: object) -> int | None:
    """A1111 uses int keys for dims; ComfyUI also accepts numeric strings."""
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, str) and key.isdigit():
        return int(key)
    return None


def network_from_a1111_dict(raw: object, path=None) -> Hypernetwork:
    if not isinstance(raw, Mapping):
        raise HypernetworkError(path, f"not a hypernetwork: the file holds a {type(raw).__name__}, "
                                      "not a dict of layers")
    pair_states = {}
    for key, value in raw.items():
        dim = dim_of_key(key)
        if dim is not None:
            pair_states[dim] = _parse_pair(path, dim, value)
    if not pair_states:
        raise HypernetworkError(path, f"not a hypernetwork: {_guess_kind(raw)}")
    config = _parse_config(path, raw)
    info = _parse_info(path, raw)
    return assemble_network(path, config, info, pair_states)


def _parse_pair(path, dim: int, value: object) -> tuple[dict, dict]:
    if dim <= 0:
        raise HypernetworkError(path, f"dim {dim} is not a positive width")
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(isinstance(s, Mapping) for s in value):
        raise HypernetworkError(path, f"dim {dim}: expected a pair of two state dicts (key, value), "
                                      f"got {type(value).__name__}")
    return tuple(_rename_legacy_keys(state) for state in value)


def _rename_legacy_keys(state: Mapping) -> dict:
    return {LEGACY_KEY_NAMES.get(k, k): v for k, v in state.items()}


def _guess_kind(raw: Mapping) -> str:
    keys = [str(k) for k in raw.keys()]
    if "state_dict" in keys or any(k.startswith(("model.diffusion_model.", "first_stage_model.")) for k in keys):
        return "this looks like a Stable Diffusion checkpoint"
    if any("lora" in k.lower() for k in keys):
        return "this looks like a LoRA"
    if any(k.startswith("string_to_param") or k == "emb_params" for k in keys):
        return "this looks like a textual-inversion embedding"
    return f"no layers keyed by integer dims (keys: {keys[:8]})"


def _parse_config(path, raw: Mapping) -> HypernetworkConfig:
    values = {key: raw.get(key, A1111_DEFAULTS[key]) for key in CONFIG_KEYS}
    for key in ("layer_structure", "dropout_structure"):
        if values[key] is not None and not isinstance(values[key], (list, tuple)):
            raise HypernetworkError(path, f"metadata {key} must be a list, got {values[key]!r}")
    if values["weight_initialization"] is None:
        values["weight_initialization"] = A1111_DEFAULTS["weight_initialization"]
    try:
        return HypernetworkConfig(**values)
    except (ValueError, TypeError) as exc:
        raise HypernetworkError(path, str(exc)) from None


def _parse_info(path, raw: Mapping) -> HypernetworkInfo:
    step = raw.get("step", 0)
    text = {}
    for key in ("name", "sd_checkpoint", "sd_checkpoint_name", "optional_info"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            value = str(value)
        text[key] = value
    known = set(CONFIG_KEYS) | set(INFO_KEYS)
    extra = {k: v for k, v in raw.items()
             if isinstance(k, str) and dim_of_key(k) is None and k not in known and _is_plain(v)}
    try:
        return HypernetworkInfo(step=0 if step is None else step, extra=extra, **text)
    except ValueError as exc:
        raise HypernetworkError(path, f"metadata: {exc}") from None


def _is_plain(value: object) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def network_to_a1111_dict(net: Hypernetwork) -> dict:
    data: dict[Any, Any] = {}
    for dim in net.dims:
        data[dim] = tuple(_module_state(module) for module in net.pair(dim))
    c, i = net.config, net.info
    data.update({
        "step": i.step,
        "name": i.name,
        "layer_structure": list(c.layer_structure),
        "activation_func": c.activation_func,
        "is_layer_norm": c.is_layer_norm,
        "weight_initialization": c.weight_initialization,
        "sd_checkpoint": i.sd_checkpoint,
        "sd_checkpoint_name": i.sd_checkpoint_name,
        "activate_output": c.activate_output,
        "use_dropout": c.use_dropout,
        "dropout_structure": list(c.dropout_structure),
        "last_layer_dropout": c.last_layer_dropout,
        "optional_info": i.optional_info,
    })
    for key, value in i.extra.items():
        data.setdefault(key, value)
    return data


def _module_state(module) -> OrderedDict:
    # Own, contiguous CPU copies: torch.save would otherwise store whole shared storages.
    return OrderedDict((k, v.detach().to("cpu", copy=True).contiguous()) for k, v in module.state_dict().items())
