"""Hypernetwork files: A1111 `.pt` (read without running pickled code), the pack's `.safetensors` form,
the `.optim` optimizer sidecar, and ``files.py`` choosing between them by content and suffix."""
