"""From-the-spec reference of AUTOMATIC1111's hypernetwork maths.

Written only from DESIGN.md section 2 (the A1111 ``.pt`` format), deliberately independent of
``hn_core``: the library is tested by comparing it with this file.

What is here:

* :func:`a1111_activation_dict` - activation name -> module class, as A1111 builds it.
* :func:`derive_dropout_structure` - A1111's dropout structure when the file has none.
* :func:`resolve_a1111_config` - the metadata of a raw dict with A1111's defaults applied.
* :func:`build_reference_mlp` / :func:`build_reference_pairs` - the k/v MLPs of a raw dict,
  state dicts loaded with strict key matching, in eval mode.
* :func:`reference_transform` / :func:`reference_chain` - the residual attention-input rewrite.
* :func:`make_raw_a1111_dict` - a random A1111-style raw dict (what ``torch.load`` returns for a
  ``.pt`` written by A1111), for tests to ``torch.save``.
"""

from __future__ import annotations

import inspect
from typing import Any, Iterable, Mapping, Sequence

import torch

__all__ = [
    "A1111_DEFAULTS",
    "METADATA_KEYS",
    "ReferenceModule",
    "a1111_activation_dict",
    "build_reference_mlp",
    "build_reference_pairs",
    "derive_dropout_structure",
    "make_raw_a1111_dict",
    "reference_chain",
    "reference_transform",
    "resolve_a1111_config",
]

# Metadata keys with A1111's defaults when a key is missing (DESIGN.md section 2).
A1111_DEFAULTS: dict[str, Any] = {
    "layer_structure": [1, 2, 1],
    "activation_func": None,  # None means linear (no activation module)
    "is_layer_norm": False,
    "weight_initialization": "Normal",
    "use_dropout": False,
    "dropout_structure": None,  # derived when missing
    "activate_output": True,  # A1111: True (ComfyUI's built-in loader wrongly uses False)
    "last_layer_dropout": False,
    "optional_info": None,
    "name": None,
    "step": 0,
    "sd_checkpoint": None,
    "sd_checkpoint_name": None,
}

METADATA_KEYS: tuple[str, ...] = tuple(A1111_DEFAULTS)

# NovelAI's original files: two Linears called linear1 / linear2.
_LEGACY_RENAMES = {
    "linear1.weight": "linear.0.weight",
    "linear1.bias": "linear.0.bias",
    "linear2.weight": "linear.1.weight",
    "linear2.bias": "linear.1.bias",
}


def a1111_activation_dict() -> dict[str, type[torch.nn.Module]]:
    """Activation name -> class, the way A1111 builds its table.

    The historical base names first (``swish`` is ``Hardswish``), then every class defined in
    ``torch.nn.modules.activation`` under its lower-cased class name.
    """
    table: dict[str, type[torch.nn.Module]] = {
        "linear": torch.nn.Identity,
        "relu": torch.nn.ReLU,
        "leakyrelu": torch.nn.LeakyReLU,
        "elu": torch.nn.ELU,
        "swish": torch.nn.Hardswish,
        "tanh": torch.nn.Tanh,
        "sigmoid": torch.nn.Sigmoid,
    }
    mod = torch.nn.modules.activation
    for cls_name, cls in inspect.getmembers(mod, inspect.isclass):
        if cls.__module__ == mod.__name__:
            table[cls_name.lower()] = cls
    return table


def derive_dropout_structure(
    layer_structure: Sequence[float], use_dropout: bool, last_layer_dropout: bool
) -> list[float]:
    """Dropout probabilities per layer_structure entry when the file carries none.

    All zeros unless ``use_dropout``; otherwise 0 first, 0.3 for the middle steps, the last hidden
    step 0.3 only if ``last_layer_dropout``, and 0 last.
    """
    n = len(layer_structure)
    if not use_dropout or n <= 2:
        # With n == 2 there is no hidden step at all.  (A1111's own helper returns a list one
        # longer than layer_structure there; the dropout it then adds sits after the only Linear,
        # shifts no index and is inactive in eval mode, so it cannot be observed at inference.)
        return [0.0] * n
    values = [0.0]
    values.extend([0.3] * (n - 3))
    values.append(0.3 if last_layer_dropout else 0.0)
    values.append(0.0)
    return values


def resolve_a1111_config(raw: Mapping[Any, Any]) -> dict[str, Any]:
    """The metadata of a raw A1111 dict, A1111's defaults filled in, dropout structure derived."""
    cfg = {key: raw.get(key, default) for key, default in A1111_DEFAULTS.items()}
    cfg["layer_structure"] = list(cfg["layer_structure"])
    if cfg["dropout_structure"] is None:
        cfg["dropout_structure"] = derive_dropout_structure(
            cfg["layer_structure"], bool(cfg["use_dropout"]), bool(cfg["last_layer_dropout"])
        )
    else:
        cfg["dropout_structure"] = list(cfg["dropout_structure"])
    return cfg


def dims_of(raw: Mapping[Any, Any]) -> list[int]:
    """Integer keys of a raw dict (the dims), in file order."""
    return [k for k in raw if type(k) is int]


class ReferenceModule(torch.nn.Module):
    """A module whose only child is a Sequential named ``linear``; forward = MLP only."""

    def __init__(self, layers: Iterable[torch.nn.Module]):
        super().__init__()
        self.linear = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D401 - the MLP, no residual
        return self.linear(x)


def build_reference_mlp(
    dim: int,
    layer_structure: Sequence[float],
    activation_func: str | None,
    is_layer_norm: bool,
    dropout_structure: Sequence[float],
    activate_output: bool,
) -> ReferenceModule:
    """An untrained module laid out exactly as section 2 prescribes (indices count every child)."""
    ls = list(layer_structure)
    if len(ls) < 2 or ls[0] != 1 or ls[-1] != 1:
        raise ValueError(f"layer_structure must start and end with 1: {ls}")
    table = a1111_activation_dict()
    layers: list[torch.nn.Module] = []
    for i in range(len(ls) - 1):
        width_in, width_out = int(dim * ls[i]), int(dim * ls[i + 1])
        layers.append(torch.nn.Linear(width_in, width_out))
        is_last = i == len(ls) - 2
        if activation_func == "linear" or activation_func is None or (is_last and not activate_output):
            pass
        elif activation_func in table:
            layers.append(table[activation_func]())  # instantiated with no arguments
        else:
            raise ValueError(f"unknown activation {activation_func!r}")
        if is_layer_norm:
            layers.append(torch.nn.LayerNorm(width_out))
        if dropout_structure[i + 1] > 0:
            layers.append(torch.nn.Dropout(p=dropout_structure[i + 1]))
    return ReferenceModule(layers)


def _fix_legacy_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {_LEGACY_RENAMES.get(k, k): v for k, v in state_dict.items()}


def build_reference_pairs(raw: Mapping[Any, Any]) -> dict[int, tuple[ReferenceModule, ReferenceModule]]:
    """dim -> (k_module, v_module) with the file's weights loaded strictly, in eval mode."""
    cfg = resolve_a1111_config(raw)
    pairs: dict[int, tuple[ReferenceModule, ReferenceModule]] = {}
    for dim in dims_of(raw):
        entry = raw[dim]
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise ValueError(f"dim {dim}: expected a pair of state dicts")
        modules = []
        for sd in entry:
            module = build_reference_mlp(
                dim,
                cfg["layer_structure"],
                cfg["activation_func"],
                bool(cfg["is_layer_norm"]),
                cfg["dropout_structure"],
                bool(cfg["activate_output"]),
            )
            module.load_state_dict(_fix_legacy_keys(sd), strict=True)
            module.eval()
            modules.append(module)
        pairs[dim] = (modules[0], modules[1])
    return pairs


@torch.no_grad()
def reference_transform(
    raw: Mapping[Any, Any], k_in: torch.Tensor, v_in: torch.Tensor, strength: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(k + s*MLP_k(k), v + s*MLP_v(v))`` for the dim equal to ``k_in.shape[-1]``.

    Returns the inputs unchanged when the file has no such dim.  The v stream uses the same
    dim's pair (in attention both inputs have the key input's width).
    """
    pairs = build_reference_pairs(raw)
    dim = k_in.shape[-1]
    if dim not in pairs:
        return k_in, v_in
    mlp_k, mlp_v = pairs[dim]
    return k_in + strength * mlp_k(k_in), v_in + strength * mlp_v(v_in)


@torch.no_grad()
def reference_chain(
    raws: Sequence[Mapping[Any, Any]],
    k_in: torch.Tensor,
    v_in: torch.Tensor,
    strengths: Sequence[float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Several hypernetworks in load order: each sees the previous one's output.

    The k and v streams are chained separately.
    """
    if strengths is None:
        strengths = [1.0] * len(raws)
    if len(strengths) != len(raws):
        raise ValueError("one strength per hypernetwork")
    k, v = k_in, v_in
    for raw, s in zip(raws, strengths):
        k, v = reference_transform(raw, k, v, s)
    return k, v


# --------------------------------------------------------------------------------------------
# Random raw dicts for tests
# --------------------------------------------------------------------------------------------


def _randomise_state_dict(module: torch.nn.Module, gen: torch.Generator, std: float) -> dict[str, torch.Tensor]:
    """The module's state dict with every tensor replaced by visible random values."""
    out: dict[str, torch.Tensor] = {}
    owners = dict(module.named_modules())
    for key, tensor in module.state_dict().items():
        owner_name, _, param = key.rpartition(".")
        owner = owners[owner_name]
        noise = torch.randn(tensor.shape, generator=gen, dtype=torch.float32) * std
        if isinstance(owner, torch.nn.LayerNorm) and param == "weight":
            value = 1.0 + noise  # LayerNorm gain around 1
        elif isinstance(owner, torch.nn.PReLU):
            value = 0.25 + noise  # PReLU slope around its default
        else:
            value = noise
        out[key] = value.contiguous()
    return out


def make_raw_a1111_dict(
    dims: Iterable[int] = (768,),
    layer_structure: Sequence[float] = (1, 2, 1),
    activation: str | None = "linear",
    is_layer_norm: bool = False,
    *,
    use_dropout: bool = False,
    dropout_structure: Sequence[float] | None = None,
    activate_output: bool = True,
    last_layer_dropout: bool = False,
    weight_initialization: str = "Normal",
    name: str | None = "reference",
    step: int = 0,
    sd_checkpoint: str | None = None,
    sd_checkpoint_name: str | None = None,
    optional_info: str | None = None,
    omit: Iterable[str] = (),
    pair_type: type = list,
    legacy_novelai: bool = False,
    std: float = 0.1,
    seed: int = 0,
) -> dict[Any, Any]:
    """A random A1111-style raw dict, as ``torch.load`` of an A1111 ``.pt`` would return it.

    Metadata is written the way A1111 writes it (``dropout_structure`` is always present, derived
    when not given); keys named in ``omit`` are then removed, and the MLPs are built from what
    remains with A1111's defaults, so an omitted key really behaves as missing.  ``pair_type``
    picks list or tuple for each dim's pair.  ``legacy_novelai`` makes a NovelAI original: two
    Linears keyed ``linear1`` / ``linear2`` (dim -> 2*dim -> dim) and no metadata at all.
    All tensors are fp32 with std ``std`` (LayerNorm gains around 1) from a seeded generator.
    """
    dims = [int(d) for d in dims]
    gen = torch.Generator().manual_seed(seed)
    raw: dict[Any, Any] = {}

    if legacy_novelai:
        for dim in dims:
            pair = []
            for _ in range(2):
                sd = {
                    "linear1.weight": torch.randn(dim * 2, dim, generator=gen) * std,
                    "linear1.bias": torch.randn(dim * 2, generator=gen) * std,
                    "linear2.weight": torch.randn(dim, dim * 2, generator=gen) * std,
                    "linear2.bias": torch.randn(dim, generator=gen) * std,
                }
                pair.append(sd)
            raw[dim] = pair_type(pair)
        return raw

    if dropout_structure is None:
        written_dropout = derive_dropout_structure(layer_structure, use_dropout, last_layer_dropout)
    else:
        written_dropout = list(dropout_structure)
    metadata: dict[str, Any] = {
        "step": step,
        "name": name,
        "layer_structure": list(layer_structure),
        "activation_func": activation,
        "is_layer_norm": is_layer_norm,
        "weight_initialization": weight_initialization,
        "sd_checkpoint": sd_checkpoint,
        "sd_checkpoint_name": sd_checkpoint_name,
        "activate_output": activate_output,
        "use_dropout": use_dropout,
        "dropout_structure": written_dropout,
        "last_layer_dropout": last_layer_dropout,
        "optional_info": optional_info,
    }
    for key in omit:
        if key not in metadata:
            raise KeyError(f"cannot omit unknown metadata key {key!r}")
        del metadata[key]

    cfg = resolve_a1111_config(metadata)
    for dim in dims:
        pair = []
        for _ in range(2):
            module = build_reference_mlp(
                dim,
                cfg["layer_structure"],
                cfg["activation_func"],
                bool(cfg["is_layer_norm"]),
                cfg["dropout_structure"],
                bool(cfg["activate_output"]),
            )
            pair.append(_randomise_state_dict(module, gen, std))
        raw[dim] = pair_type(pair)
    raw.update(metadata)
    return raw
