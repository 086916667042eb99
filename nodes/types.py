"""ComfyUI socket type names shared by the pack's nodes."""

HYPERNETWORK = "HYPERNETWORK"
CATEGORY = "loaders/hypernetworks"
