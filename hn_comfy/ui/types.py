"""ComfyUI socket type names and node-library categories shared by the pack's nodes.

The categories sit under today's ComfyUI parents (0.33 files its own HypernetworkLoader under
``model/loaders``, TrainLoraNode under ``model/training``, SaveLoRA, ModelSave and the model
mergers under ``model/merging``), so the node library shows the pack beside the host's siblings.
A category is only where the library lists a node: saved workflows do not record it.
"""

HYPERNETWORK = "HYPERNETWORK"

LOADERS_CATEGORY = "model/loaders/hypernetworks"  # load, apply, strength
TRAINING_CATEGORY = "model/training/hypernetworks"  # train
MERGING_CATEGORY = "model/merging/hypernetworks"  # save, merge, LoRA export, bake (host: SaveLoRA, ModelSave)
