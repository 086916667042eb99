"""BakeHypernetwork: a MODEL with the hypernetwork folded into its attention weights.

The result carries the exact weight changes as ComfyUI weight patches (``add_patches``, the way a
LoRA loader patches a model), so ComfyUI's own Save Checkpoint / ModelSave writes the changed
weights: a plain checkpoint that loads anywhere, with no hypernetwork needed at run time.
"""
from __future__ import annotations

import torch

from .export_fidelity import measure
from .export_inputs import PREFIX
from .hypernetwork_export import (ExportNode, applied_reference, optional_probe_inputs, plan_export, report,
                                 required_export_inputs)

NODE = "Bake Hypernetwork"


class BakeHypernetwork(ExportNode):
    DESCRIPTION = ("Folds a hypernetwork into a copy of the model's attention weights (exact for a linear network; "
                   "a non-linear one is replaced by its best linear fit). Save the result with Save Checkpoint or "
                   "ModelSave for a checkpoint that needs no hypernetwork. Reports its error against Apply Hypernetwork.")
    RETURN_TYPES = ("MODEL", "STRING")
    RETURN_NAMES = ("model", "report")
    OUTPUT_TOOLTIPS = ("A copy of the model with the changed weights (the input model is left unchanged).",
                       "How the bake was made and its measured error against Apply Hypernetwork.")
    FUNCTION = "bake"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": required_export_inputs("The model to bake into (left unchanged).", "baked"),
            "optional": optional_probe_inputs(),
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def bake(self, model, hypernetwork, strength, conditioning=None, latent=None, seed=0, calibration_steps=4,
             unique_id=None):
        plan = plan_export(NODE, model, hypernetwork, strength, conditioning, latent, seed, calibration_steps)
        baked = model.clone()
        baked.add_patches(weight_patches(plan.changes), 1.0)
        fidelity = measure(model, applied_reference(model, hypernetwork, strength), baked, plan.inputs)
        kind = "exact (linear network)" if plan.exact else "best linear fit of a non-linear network"
        lines = [f"baked {len(plan.changes)} attention layers, {kind}"] + plan.notes + [fidelity.text()]
        if plan.unused_dims:
            lines.append(f"dims {plan.unused_dims} match no layer of this model: not baked")
        text = report(NODE, lines, unique_id)
        return {"ui": {"text": [text]}, "result": (baked, text)}


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
