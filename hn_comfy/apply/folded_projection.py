"""A to_k / to_v projection with linear hypernetworks folded into its weight (the speed path).

The stand-in is the original ComfyUI Linear with another forward: it shares the original's
instance dict (parameters, buffers, and every flag ComfyUI keeps on a layer: comfy_patched_weights,
weight_function, _v, ...), so the layer has one state whichever of the two objects is live.
ModelPatcher finds and patches `...to_k.weight` (LoRA etc.) and casts it as usual, a stand-in made
while another clone's patched weights are loaded never carries them, and nothing the stand-in saw
survives its removal. Only forward differs: one F.linear with W (I + sA) instead of a hypernetwork
MLP before W. The hypernetwork state of a stand-in lives beside it (`_STATE`), never in the shared dict.

Where ComfyUI makes the weight afresh for each call, the stand-in asks ComfyUI for it
(`comfy.ops.cast_bias_weight`, which applies LoRA and other weight patches) and folds per call,
keeping nothing on the device. That is the case with low-VRAM weight functions, with offloaded
weights, and with DynamicVRAM (ComfyUI >= 0.33, `ModelPatcherDynamic`): there weights stream from
RAM through a per-module `_v` slot and LoRA arrives as `weight_lowvram_function`, neither of which
the plain `self.weight` carries. Otherwise the fused weight is made once per weight version.
"""
from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import comfy.ops

from ...hn_core.inference.folding import compose_affine, fuse_projection, linear_through_affine, residual_delta


@dataclass(frozen=True)
class FoldRecord:
    """One Apply node's folded hypernetwork, in graph order (`sequence`)."""

    sequence: int
    network: object
    strength: float
    profile: object


@dataclass
class FoldState:
    """What a stand-in adds to its layer: the folded records and maps, and its fused-weight cache."""

    original: torch.nn.Module
    records: list
    affines: list
    device_affine: "DeviceAffine"
    root: object  # weakref to the ComfyUI BaseModel, or None
    fused: tuple | None = None


# Stand-in -> its FoldState. Weak keys: a stand-in dropped with its clone takes its state along.
_STATE: "weakref.WeakKeyDictionary[torch.nn.Module, FoldState]" = weakref.WeakKeyDictionary()


class FoldedProjectionMixin:
    """Forward of a Linear whose input first goes through the folded hypernetworks."""

    @property
    def hn_state(self) -> FoldState:
        try:
            return _STATE[self]
        except KeyError:
            raise AttributeError("hn_state") from None

    @property
    def hn_original(self):
        return self.hn_state.original

    @property
    def hn_records(self):
        return self.hn_state.records

    @property
    def hn_affines(self):
        return self.hn_state.affines

    @property
    def hn_device_affine(self):
        return self.hn_state.device_affine

    @property
    def hn_affine(self):
        return self.hn_state.device_affine.affine

    @property
    def hn_fused_cached(self) -> bool:
        """Whether this stand-in keeps a fused weight (never where ComfyUI makes weights per call)."""
        return self.hn_state.fused is not None

    def __deepcopy__(self, memo):
        # A copy of the layer under a copy of this stand-in (the state is not in the shared dict).
        state = self.hn_state
        root = None if state.root is None else state.root()
        copied = make_folded(copy.deepcopy(state.original, memo), state.records, state.affines,
                             memo.get(id(root), root))
        memo[id(self)] = copied
        return copied

    def forward(self, x):
        run_every_op = getattr(comfy.ops, "run_every_op", None)
        if run_every_op is not None:
            run_every_op()
        if self._weight_made_per_call(x):
            weight, bias, offload = comfy.ops.cast_bias_weight(self, x, offloadable=True)
            try:
                delta, offset = self._delta_on(x.device)
                return linear_through_affine(x, weight, bias, delta, offset)
            finally:
                comfy.ops.uncast_bias_weight(self, weight, bias, offload)
        fused_weight, fused_bias = self._fused_for(x)
        return F.linear(x, fused_weight, fused_bias)

    def _weight_made_per_call(self, x) -> bool:
        # What makes ComfyUI's cast path produce a weight other than the resident self.weight.
        if getattr(self, "weight_function", None) or getattr(self, "bias_function", None):
            return True  # low-VRAM LoRA patches (LowVramPatch), weight wrappers
        if hasattr(self, "_v"):
            return True  # DynamicVRAM: streamed weight, LoRA in weight_lowvram_function
        weight = self.weight
        return weight is None or weight.device != x.device  # offloaded: keep no device copy

    def _delta_on(self, device):
        # (M - I, b) on the activations' device, shared by every stand-in folding the same map.
        return self.hn_device_affine.on(device)

    def _fused_for(self, x):
        # Cached per weight version and activation dtype/device: the fuse costs a float64 matrix
        # product, paid once per sampling run, not per step. A patched weight (LoRA) is a new Parameter.
        state = self.hn_state
        weight, bias = self.weight, self.bias
        key = (_version_of(weight), None if bias is None else _version_of(bias), self._root_patches(),
               x.dtype, x.device, torch.is_inference_mode_enabled())
        cached = state.fused
        if cached is None or cached[0] != key:
            state.fused = None  # drop the old copy before making the new one
            fused_weight, fused_bias = fuse_projection(
                weight.to(x.device), None if bias is None else bias.to(x.device), self.hn_affine, x.dtype)
            cached = (key, fused_weight, fused_bias)
            state.fused = cached
        return cached[1], cached[2]

    def _root_patches(self):
        # Which weight patches ComfyUI last applied to the model (changes when in-place updates do).
        root = self.hn_state.root
        model = root() if root is not None else None
        return getattr(model, "current_weight_patches_uuid", None)


def _version_of(tensor):
    # Inference tensors (weights patched or loaded under torch.inference_mode, as ComfyUI's nodes
    # do) keep no version counter: their identity and storage, with _root_patches, stand in for it.
    try:
        version = tensor._version
    except RuntimeError:
        version = None
    return id(tensor), tensor.data_ptr(), version


def make_folded(original: torch.nn.Module, records: list[FoldRecord], affines: list, root=None):
    """A stand-in for `original` with the affine maps of `records` folded, applied in order.

    `root`: the ComfyUI BaseModel the stand-in lives in (held weakly), whose weight-patch state
    keys the fused-weight cache.
    """
    cls = _folded_class(type(original))
    folded = cls.__new__(cls)
    # One state for the layer: the stand-in and the original share their instance dict, so what
    # ComfyUI sets on the live one (patched weights, per-call weight functions, load flags) is what
    # the other sees, and a stand-in made now carries nothing from the moment it was made.
    folded.__dict__ = original.__dict__
    _STATE[folded] = FoldState(original, list(records), list(affines), _shared_affine(affines),
                               None if root is None else weakref.ref(root))
    return folded


_CLASSES: dict[type, type] = {}


def _folded_class(base: type) -> type:
    if base not in _CLASSES:
        _CLASSES[base] = type(f"HypernetworkFolded{base.__name__}", (FoldedProjectionMixin, base), {})
    return _CLASSES[base]


# One composed map per sequence of folded maps (the same for every layer of a width), so per-device
# copies exist once, not once per layer. Values hold their `affines`, so the id keys stay unique.
_SHARED: "weakref.WeakValueDictionary[tuple[int, ...], DeviceAffine]" = weakref.WeakValueDictionary()


def _shared_affine(affines: list) -> "DeviceAffine":
    key = tuple(id(a) for a in affines)
    shared = _SHARED.get(key)
    if shared is None:
        shared = DeviceAffine(affines)
        _SHARED[key] = shared
    return shared


class DeviceAffine:
    """The composition of affine maps (applied in order), with its fp32 (M - I, b) per device."""

    def __init__(self, affines: list) -> None:
        self.affines = list(affines)
        affine = affines[0]
        for step in affines[1:]:
            affine = compose_affine(affine, step)
        self.affine = affine
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def on(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        device = torch.device(device)
        if device not in self._on:
            self._on[device] = residual_delta(self.affine, device)
        return self._on[device]
