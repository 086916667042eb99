"""A real, in-process ComfyUI for the integration tests.

``comfy_host`` starts ComfyUI (its built-in nodes, then this pack through ComfyUI's own custom
node loader); ``models`` builds randomly initialised SD1.x / SD2.x / SDXL UNets from ComfyUI's
model classes and runs them the way ComfyUI's samplers do.

Importing this package is cheap and never imports comfy or torch: unit tests of ``hn_core``
must run without a ComfyUI. Everything heavy happens inside the functions.
"""
