"""hn_core.export.lora_keys against ComfyUI's own tables, at the real SD1.5, SD2.1 and SDXL layouts (no model built).

ComfyUI maps a kohya ``lora_unet_<diffusers path>`` name through ``comfy.utils.unet_to_diffusers``
(diffusers key -> UNet key) and an SGM name by its own path; every attention projection's name
must land on that projection.
"""
from __future__ import annotations

import pytest

from hn_core.export.lora_keys import kohya_name
from tests.host import models
from tests.inference import lora_export_support as le

LAYOUTS = {"sd15": models.SD15_UNET, "sd21": models.SD21_UNET, "sdxl": models.SDXL_UNET,
           "tiny_sd1": models.TINY_SD1_UNET, "tiny_sdxl": le.TINY_SDXL_UNET}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_names_land_on_the_projection(comfy_host, layout):
    import comfy.utils

    config = LAYOUTS[layout]
    table = comfy.utils.unet_to_diffusers(dict(config))  # diffusers key -> UNet key
    projections = [unet_key[: -len(".weight")] for unet_key in table.values()
                   if unet_key.endswith((".to_k.weight", ".to_v.weight", ".to_out.0.weight"))]
    assert projections
    by_kohya = {"lora_unet_" + d[: -len(".weight")].replace(".", "_"): u[: -len(".weight")] for d, u in table.items()}
    for path in projections:
        layer, projection = path.split(".attn")[0], path.split(".attn")[1]
        layer = f"{layer}.attn{projection[0]}"
        projection = projection[2:]
        sgm = kohya_name(layer, projection, sgm=True, res_blocks_per_level=config["num_res_blocks"])
        assert sgm == "lora_unet_" + path.replace(".", "_")  # ComfyUI maps its own path for any UNet
        diffusers = kohya_name(layer, projection, sgm=False, res_blocks_per_level=config["num_res_blocks"])
        assert by_kohya.get(diffusers) == path, (diffusers, path)
