"""HypernetworkToLoRA: write a hypernetwork's change of a model as a kohya LoRA in models/loras."""
from __future__ import annotations

import json
import os

import folder_paths

from ..hn_core.lora_export import ExportError
from ..hn_core.lora_file import SAVE_DTYPES, lora_metadata, lora_state_dict, write_lora
from .export_fidelity import measure
from .export_inputs import base_model_version, is_sdxl, res_blocks_per_level
from .hypernetwork_export import (ExportNode, applied_reference, optional_probe_inputs, plan_export, report,
                                 required_export_inputs)
from .save_hypernetwork import target_path

NODE = "Hypernetwork to LoRA"
VALUE_BIAS = {"drop (any reader)": False, "to_out diff_b (ComfyUI only)": True}


class HypernetworkToLoRA(ExportNode):
    DESCRIPTION = ("Writes the change a hypernetwork makes to this model as a LoRA on the attention key/value "
                   "projections (kohya names: loads in ComfyUI's LoRA loaders, A1111/Forge and diffusers). A linear "
                   "network is exact at full rank; a lower rank or a non-linear network is approximated, and the "
                   "node reports how close the result is to Apply Hypernetwork.")
    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("lora_name", "report")
    OUTPUT_TOOLTIPS = ("The file's name inside models/loras (as Load LoRA lists it).",
                       "What was exported and its measured error against Apply Hypernetwork.")
    FUNCTION = "export"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                **required_export_inputs("The model the LoRA is for: the change depends on its own to_k/to_v "
                                         "weights. Left unchanged.", "exported"),
                "filename": ("STRING", {"default": "hypernetwork_lora", "tooltip": "File name inside models/loras "
                                        "(subfolders allowed, .safetensors added)."}),
                "rank": ("INT", {"default": 0, "min": 0, "max": 4096, "tooltip": "0 = full rank (exact for a linear "
                                 "network). Lower: a smaller file by truncated SVD; the error it leaves is reported."}),
                "value_bias": (list(VALUE_BIAS), {"default": "drop (any reader)", "tooltip":
                               "The hypernetwork's value offset becomes a bias of to_out. 'drop' leaves it out: every "
                               "reader loads the file, the report shows the cost. 'to_out diff_b' keeps it: exact in "
                               "ComfyUI, but A1111/Forge and diffusers refuse such a file."}),
                "save_dtype": (list(SAVE_DTYPES), {"default": "fp16", "tooltip":
                               "Precision of the stored factors (fp16 is the usual LoRA size; fp32 for exactness)."}),
                "overwrite": ("BOOLEAN", {"default": False, "tooltip": "Replace an existing file of that name. When "
                                          "off, a free numbered name (_00001, ...) is used instead."}),
            },
            "optional": optional_probe_inputs(),
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def export(self, model, hypernetwork, strength, filename, rank, value_bias, save_dtype, overwrite,
               conditioning=None, latent=None, seed=0, calibration_steps=4, unique_id=None):
        import comfy.lora
        import comfy.sd
        import comfy.utils

        progress = comfy.utils.ProgressBar(3)
        plan = plan_export(NODE, model, hypernetwork, strength, conditioning, latent, seed, calibration_steps)
        progress.update(1)
        try:
            state, summary = lora_state_dict(plan.changes, rank=rank, sgm=is_sdxl(model),
                                             res_blocks_per_level=res_blocks_per_level(model),
                                             value_bias=VALUE_BIAS[value_bias], dtype=SAVE_DTYPES[save_dtype])
        except ExportError as exc:
            raise ExportError(f"{NODE}: {exc}") from None
        summary.exact, summary.unused_dims, summary.notes = plan.exact, plan.unused_dims, plan.notes
        _check_comfy_reads_every_key(state, comfy.lora.model_lora_keys_unet(model.model, {}))

        # Measure the file's own tensors (rounded to save_dtype), loaded as LoraLoaderModelOnly loads them.
        (exported, _clip) = comfy.sd.load_lora_for_models(model, None, state, 1.0, 0.0)
        fidelity = measure(model, applied_reference(model, hypernetwork, strength), exported, plan.inputs)
        progress.update(1)

        root = folder_paths.get_folder_paths("loras")[0]
        path = target_path(root, filename, ".safetensors", overwrite, folder="models/loras")
        write_lora(path, state, {**lora_metadata(plan.network, summary, base_model_version(model)),
                                 "hn_fidelity": json.dumps(fidelity.as_dict())})
        progress.update(1)
        relative = os.path.relpath(path, root).replace(os.sep, "/")
        text = report(NODE, [f"wrote {relative}", summary.text(), fidelity.text()], unique_id)
        return {"ui": {"text": [text]}, "result": (relative, text)}


def _check_comfy_reads_every_key(state, key_map) -> None:
    """Every module the file names must be one ComfyUI maps for this model (else it would skip it)."""
    for key in state:
        stem = key.split(".", 1)[0]
        if stem not in key_map:
            raise ExportError(f"{NODE}: ComfyUI has no layer named {stem} in this model; the export does not know "
                              "this model's layout (SD1.x, SD2.x and SDXL UNets are supported)")
