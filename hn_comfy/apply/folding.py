"""Choosing between the two ways Apply Hypernetwork patches a model, and keeping their order.

- fold (speed path): a linear hypernetwork acting over the whole schedule is folded into each
  matching to_k / to_v weight (object patches with stand-in Linears, see folded_projection.py);
- patch (exact path): attn1/attn2 patches that run the MLP before the projections.

Folds act after every attention patch, so once a patch-path hypernetwork follows folded ones,
the folded ones are turned back into patches first: A1111's order (graph order) is kept.
"""
from __future__ import annotations

import itertools

import comfy.utils

from ...hn_core import HypernetworkPatch
from ...hn_core.inference.folding import is_foldable, residual_affine
from .folded_projection import FoldRecord, make_folded
from .model_attention import attention_layers

PROJECTIONS = (("to_k", 0), ("to_v", 1))
_sequence = itertools.count(1)


def can_fold(model, network, profile) -> bool:
    """Whether Apply may fold `network` into `model`'s to_k / to_v (at any strength)."""
    # Every linear network over the whole schedule folds, however strong: the fused weight rounds
    # once, so it is at least as close to the float64 truth as the exact path (hn_core/inference/folding.py).
    if not profile.full_range or not is_foldable(network):
        return False
    # Never stack on another pack's replacement of a projection: its behaviour is unknown.
    for path, _kind, _block, _module in attention_layers(model):
        for projection, _role in PROJECTIONS:
            existing = model.object_patches.get(f"{path}.{projection}")
            if existing is not None and not hasattr(existing, "hn_records"):
                return False
    return True


def fold_into(patched, network, strength: float, profile) -> None:
    record = FoldRecord(next(_sequence), network, strength, profile)
    affine_cache = {}
    for path, kind, block, attention in attention_layers(patched):
        dim = attention.to_k.in_features
        layer_strength = strength * profile.weight(kind, block)
        if not network.has_dim(dim) or layer_strength == 0.0:
            continue
        for projection, role in PROJECTIONS:
            key = f"{path}.{projection}"
            cache_key = (dim, role, layer_strength)
            if cache_key not in affine_cache:
                affine_cache[cache_key] = residual_affine(network.pair(dim)[role], layer_strength)
            existing = patched.object_patches.get(key)
            if existing is not None:
                original, records, affines = existing.hn_original, existing.hn_records, existing.hn_affines
            else:
                # The live tree may hold another clone's stand-in while that clone is loaded.
                original = comfy.utils.get_attr(patched.model, key)
                original, records, affines = getattr(original, "hn_original", original), [], []
            patched.add_object_patch(
                key, make_folded(original, records + [record], affines + [affine_cache[cache_key]], patched.model))


def unfold_all(patched, companion_for) -> None:
    """Turn every folded hypernetwork back into attention patches, in graph order."""
    folded_keys = [k for k, v in patched.object_patches.items() if hasattr(v, "hn_records")]
    records = {}
    for key in folded_keys:
        for record in patched.object_patches.pop(key).hn_records:
            records[record.sequence] = record
    for sequence in sorted(records):
        record = records[sequence]
        add_patches(patched, record.network, record.strength, record.profile, None, companion_for(record.network))


def add_patches(patched, network, strength, profile, sigma_range, companions) -> None:
    patched.set_model_attn1_patch(HypernetworkPatch(network, strength, "attn1", profile, sigma_range, companions))
    patched.set_model_attn2_patch(HypernetworkPatch(network, strength, "attn2", profile, sigma_range, companions))
