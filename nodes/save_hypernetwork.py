"""SaveHypernetwork: write a HYPERNETWORK into models/hypernetworks, atomically, never overwriting silently."""
from __future__ import annotations

from ..hn_comfy.files.saving import FORMATS, save_to_model_folder
from ..hn_comfy.ui.types import HYPERNETWORK, MERGING_CATEGORY


class SaveHypernetwork:
    DESCRIPTION = ("Saves a hypernetwork to models/hypernetworks as an AUTOMATIC1111 .pt (with its optimizer "
                   "state in a .optim sidecar, so training can resume) or as this pack's .safetensors form.")
    CATEGORY = MERGING_CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("file",)
    OUTPUT_TOOLTIPS = ("The saved file's name inside models/hypernetworks (as Load Hypernetwork lists it).",)
    FUNCTION = "save"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "hypernetwork": (HYPERNETWORK, {"tooltip": "From Train Hypernetwork or Load Hypernetwork."}),
            "filename": ("STRING", {"default": "my_hypernetwork", "tooltip": "File name inside "
                                    "models/hypernetworks (subfolders allowed, no extension needed)."}),
            "format": (list(FORMATS), {"default": "pt (A1111)", "tooltip": ".pt loads in A1111 and ComfyUI's "
                                       "built-in loader; .safetensors cannot carry code. Both get a .optim "
                                       "sidecar when there is optimizer state."}),
            "overwrite": ("BOOLEAN", {"default": False, "tooltip": "Replace an existing file of that name. "
                                      "When off, a free numbered name (_00001, ...) is used instead."}),
        }}

    def save(self, hypernetwork, filename, format, overwrite):
        relative = save_to_model_folder(hypernetwork, filename, format, overwrite)
        return {"ui": {"text": [relative]}, "result": (relative,)}
