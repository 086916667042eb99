"""Hypernetwork to LoRA's work: the hypernetwork's change of a model as a kohya LoRA file in models/loras,
measured as ComfyUI's LoraLoaderModelOnly would load it."""
from __future__ import annotations

import json
import os

import comfy.lora
import comfy.sd
import comfy.utils
import folder_paths

from ...hn_core.export.lora_export import ExportError
from ...hn_core.export.lora_file import SAVE_DTYPES, lora_metadata, lora_state_dict, write_lora
from ..files.saving import target_path
from .fidelity import measure
from .plan import applied_reference, plan_export, report
from .probe_inputs import base_model_version, is_sdxl, res_blocks_per_level

NODE = "Hypernetwork to LoRA"
VALUE_BIAS = {"drop (any reader)": False, "to_out diff_b (ComfyUI only)": True}


def export_lora(model, hypernetwork, strength: float, filename: str, rank: int, value_bias: str, save_dtype: str,
                overwrite: bool, conditioning=None, latent=None, seed: int = 0, calibration_steps: int = 4,
                node_id=None) -> tuple[str, str]:
    """Write the LoRA file into models/loras; return (its name there, the report text)."""
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
    return relative, report(NODE, [f"wrote {relative}", summary.text(), fidelity.text()], node_id)


def _check_comfy_reads_every_key(state, key_map) -> None:
    """Every module the file names must be one ComfyUI maps for this model (else it would skip it)."""
    for key in state:
        stem = key.split(".", 1)[0]
        if stem not in key_map:
            raise ExportError(f"{NODE}: ComfyUI has no layer named {stem} in this model; the export does not know "
                              "this model's layout (SD1.x, SD2.x and SDXL UNets are supported)")
