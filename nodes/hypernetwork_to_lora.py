"""HypernetworkToLoRA: write a hypernetwork's change of a model as a kohya LoRA in models/loras."""
from __future__ import annotations

from ..hn_comfy.export.node_inputs import ExportNode, optional_probe_inputs, required_export_inputs
from ..hn_comfy.export.to_lora import VALUE_BIAS, export_lora
from ..hn_core.export.lora_file import SAVE_DTYPES


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
        relative, text = export_lora(model, hypernetwork, strength, filename, rank, value_bias, save_dtype, overwrite,
                                     conditioning, latent, seed, calibration_steps, unique_id)
        return {"ui": {"text": [text]}, "result": (relative, text)}
