"""Bake Hypernetwork's work: a copy of the model with the hypernetwork's change as weight patches.

The result carries the exact weight changes as ComfyUI weight patches (``add_patches``, the way a
LoRA loader patches a model), so ComfyUI's own Save Checkpoint / ModelSave writes the changed
weights: a plain checkpoint that loads anywhere, with no hypernetwork needed at run time.
"""
from __future__ import annotations

import torch

from .fidelity import measure
from .plan import applied_reference, plan_export, report
from .probe_inputs import PREFIX

NODE = "Bake Hypernetwork"


def bake_model(model, hypernetwork, strength: float, conditioning=None, latent=None, seed: int = 0,
               calibration_steps: int = 4, node_id=None) -> tuple:
    """(a clone of `model` carrying the weight changes as ComfyUI diff patches, the report text)."""
    plan = plan_export(NODE, model, hypernetwork, strength, conditioning, latent, seed, calibration_steps)
    baked = model.clone()
    baked.add_patches(weight_patches(plan.changes), 1.0)
    fidelity = measure(model, applied_reference(model, hypernetwork, strength), baked, plan.inputs)
    kind = "exact (linear network)" if plan.exact else "best linear fit of a non-linear network"
    lines = [f"baked {len(plan.changes)} attention layers, {kind}"] + plan.notes + [fidelity.text()]
    if plan.unused_dims:
        lines.append(f"dims {plan.unused_dims} match no layer of this model: not baked")
    return baked, report(NODE, lines, node_id)


def weight_patches(changes) -> dict[str, tuple[torch.Tensor]]:
    """ComfyUI ``diff`` patches (a 1-tuple) for to_k / to_v weights and the to_out bias."""
    patches = {}
    for path, change in changes.items():
        base = f"{PREFIX}{path}"
        patches[f"{base}.to_k.weight"] = (change.to_k.to(torch.float32),)
        patches[f"{base}.to_v.weight"] = (change.to_v.to(torch.float32),)
        if change.to_out_bias is not None:
            patches[f"{base}.to_out.0.bias"] = (change.to_out_bias.to(torch.float32),)
    return patches
