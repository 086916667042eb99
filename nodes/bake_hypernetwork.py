"""BakeHypernetwork: a MODEL with the hypernetwork folded into its attention weights (ComfyUI weight
patches, so Save Checkpoint / ModelSave write a plain checkpoint)."""
from __future__ import annotations

from ..hn_comfy.export.bake import bake_model
from ..hn_comfy.export.node_inputs import ExportNode, optional_probe_inputs, required_export_inputs


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
        baked, text = bake_model(model, hypernetwork, strength, conditioning, latent, seed, calibration_steps, unique_id)
        return {"ui": {"text": [text]}, "result": (baked, text)}
