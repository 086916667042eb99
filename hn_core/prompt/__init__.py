"""A1111 prompt tags (``<hypernet:NAME:MULT>``, ``<lora:NAME:TE:UNET>``): parsing only, no ComfyUI."""
