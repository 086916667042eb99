"""comfyui-hypernetworks: load, apply and train A1111-style hypernetworks in ComfyUI."""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

# The frontend extension (web/a1111_import.js): A1111 images dropped on the canvas get the pack's loader.
WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
