"""The ComfyUI layer: what the nodes need from ComfyUI, in one place per concern. It may import comfy,
folder_paths and hn_core; never a node. See ARCHITECTURE.md.

- ``ui``: socket types, node categories, text shown on a node;
- ``files``: the hypernetworks model folder (listing, loading once, save paths, optimizer sidecars);
- ``apply``: patching a ModelPatcher (attention patches, folded projections, patch companions);
- ``training``: the training clone, the model call, dataset inputs, captions, previews, progress;
- ``export``: probe inputs, calibration and fidelity for Hypernetwork to LoRA and Bake Hypernetwork."""
