"""Applying a hypernetwork to a ComfyUI ModelPatcher: attention patches or folded to_k/to_v, on a clone."""
