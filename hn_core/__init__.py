"""hn_core: A1111-compatible hypernetworks in plain torch. Never imports ComfyUI.

The public names below are imported on first use (PEP 562), so ``python -m batch_runner`` and
other torch-free parts of the package start without paying for ``import torch``.
"""
from __future__ import annotations

import importlib

_PUBLIC = {
    "HypernetworkConfig": ".network.config", "HypernetworkInfo": ".network.config", "WEIGHT_INITIALIZATIONS": ".network.config",
    "derive_dropout_structure": ".network.config",
    "ACTIVATIONS": ".network.activations",
    "HypernetworkError": ".errors",
    "SUPPORTED_SUFFIXES": ".formats.files", "load_hypernetwork": ".formats.files", "save_hypernetwork": ".formats.files",
    "Hypernetwork": ".network.hypernetwork", "HypernetworkModule": ".network.hypernetwork",
    "load_optimizer_state": ".formats.optimizer_sidecar", "save_optimizer_state": ".formats.optimizer_sidecar",
    "HypernetworkPatch": ".inference.patch",
    "ScheduledHypernetwork": ".inference.strength_profile", "StrengthProfile": ".inference.strength_profile",
    "as_scheduled": ".inference.strength_profile", "parse_block_weights": ".inference.strength_profile",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
