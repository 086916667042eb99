"""A hypernetwork as weight changes of the attention projections (what a LoRA export or a bake writes).

For an affine hypernetwork MLP(x) = A x + c at strength s, the key projection of a patched layer is

    to_k(x + s (A x + c)) = W x + s W A x + s W c,

so the weight change is ``s W A`` and ``s W c`` is a bias. The key bias adds the same amount
``q . s W c`` to every key's logit for a query, which softmax cancels: it is dropped, exactly. The
value bias ``b = s W_v c_v`` is added to every value; each attention row's weights sum to one, so
it reaches the output unchanged and ``to_out`` turns it into ``W_out b``, a change of to_out's bias.

A non-linear network has no such form: ``linear_fit`` finds the affine map closest to it on inputs
it really sees, and the same formulas apply to that map. Nothing here imports ComfyUI: layers come
as tensors keyed by the UNet's own layer paths (``input_blocks.1.1.transformer_blocks.0.attn1``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from ..inference.folding import affine_form
from ..network.hypernetwork import Hypernetwork
from ..inference.strength_profile import StrengthProfile, block_of

Affine = tuple[torch.Tensor, torch.Tensor]  # (A, c) with MLP(x) ~= x @ A.T + c, float64
PROJECTIONS = ("to_k", "to_v")


class ExportError(ValueError):
    """A hypernetwork cannot be exported for this model; the message says which part and why."""


@dataclass(frozen=True)
class AttentionWeights:
    """One attention layer's weights as the export needs them (any dtype and device)."""

    kind: str  # 'attn1' (self-attention) or 'attn2' (cross-attention)
    block: tuple[str, int] | None  # ('input', 4), ('middle', 0), ('output', 3): strength profile key
    to_k: torch.Tensor  # [out, in]
    to_v: torch.Tensor  # [out, in]
    to_out: torch.Tensor | None = None  # to_out.0 weight [out, inner], for the value bias

    @property
    def dim(self) -> int:
        return int(self.to_k.shape[1])


@dataclass(frozen=True)
class LayerChange:
    """The exact weight changes of one attention layer, float64 on the CPU."""

    kind: str
    dim: int
    strength: float
    to_k: torch.Tensor  # change of to_k.weight
    to_v: torch.Tensor  # change of to_v.weight
    to_out_bias: torch.Tensor | None  # change of to_out.0.bias (None: no value offset or no to_out)

    def projection(self, name: str) -> torch.Tensor:
        return self.to_k if name == "to_k" else self.to_v


def attention_weights_from_state_dict(state: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, AttentionWeights]:
    """Every attention layer of a UNet state dict: keys ``<prefix><layer>.to_k.weight`` etc.

    ``prefix``: ``"model.diffusion_model."`` for an SD checkpoint, ``"diffusion_model."`` for a
    ComfyUI model's state dict. Returns ``{layer path without prefix: AttentionWeights}``.
    """
    layers = {}
    suffix = ".to_k.weight"
    for key in state:
        if not (key.startswith(prefix) and key.endswith(suffix)):
            continue
        layer = key[len(prefix):-len(suffix)]
        kind = layer.rsplit(".", 1)[-1]
        if kind not in ("attn1", "attn2"):
            continue
        base = prefix + layer
        layers[layer] = AttentionWeights(kind, block_of(layer), state[base + ".to_k.weight"],
                                         state[base + ".to_v.weight"], state.get(base + ".to_out.0.weight"))
    return layers


def check_exportable(network: Hypernetwork, profile: StrengthProfile, layers: Mapping[str, AttentionWeights]) -> list[int]:
    """Refuse what a LoRA cannot express; return the network's dims that no layer takes (reported, not exported)."""
    if not profile.full_range:
        raise ExportError(
            f"the strength profile acts only from {profile.start_percent:g} to {profile.end_percent:g} of the "
            "schedule, but a LoRA or a baked model changes the weights for every step. Set start_percent 0 and "
            "end_percent 1 in Hypernetwork Strength to export, or keep Apply Hypernetwork for a step range.")
    widths = {layer.dim for layer in layers.values()}
    used = [d for d in network.dims if d in widths]
    unused = [d for d in network.dims if d not in widths]
    if not used:
        kinds = {kind: sorted({w.dim for w in layers.values() if w.kind == kind}) for kind in ("attn1", "attn2")}
        raise ExportError(
            f"the hypernetwork's dims {list(network.dims)} match no attention layer of this model "
            f"(self-attention widths {kinds['attn1']}, cross-attention widths {kinds['attn2']}): there is "
            "nothing to export. It was made for another model family.")
    return unused


def is_affine(network: Hypernetwork) -> bool:
    """True when every MLP is affine (no activation, no layer norm): the export is exact."""
    return network.config.activation_func == "linear" and not network.config.is_layer_norm


def exact_affines(network: Hypernetwork, layers: Mapping[str, AttentionWeights]) -> dict[tuple[str, int], tuple[Affine, Affine]]:
    """{(kind, dim): (key affine, value affine)} of an affine network, for every kind and dim in use."""
    out = {}
    for layer in layers.values():
        if network.has_dim(layer.dim) and (layer.kind, layer.dim) not in out:
            key_module, value_module = network.pair(layer.dim)
            out[(layer.kind, layer.dim)] = (affine_form(key_module), affine_form(value_module))
    return out


def layer_changes(layers: Mapping[str, AttentionWeights], affines: Mapping[tuple[str, int], tuple[Affine, Affine]],
                  strength: float, profile: StrengthProfile) -> dict[str, LayerChange]:
    """The weight changes per layer path; layers at strength 0 or without an affine map are left out."""
    changes = {}
    for path, layer in layers.items():
        pair = affines.get((layer.kind, layer.dim))
        layer_strength = strength * profile.weight(layer.kind, layer.block)
        if pair is None or layer_strength == 0.0:
            continue
        (a_k, _c_k), (a_v, c_v) = pair
        w_k, w_v = _f64(layer.to_k), _f64(layer.to_v)
        # The key offset s W_k c_k is dropped: softmax cancels it (module docstring).
        value_offset = layer_strength * (w_v @ c_v)
        to_out_bias = None
        if layer.to_out is not None and bool(value_offset.any()):
            to_out_bias = _f64(layer.to_out) @ value_offset
        changes[path] = LayerChange(layer.kind, layer.dim, layer_strength, layer_strength * (w_k @ a_k),
                                    layer_strength * (w_v @ a_v), to_out_bias)
    return changes


def _f64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", torch.float64)
