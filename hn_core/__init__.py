"""hn_core: A1111-compatible hypernetworks in plain torch. Never imports ComfyUI.

The public names below are imported on first use (PEP 562), so ``python -m hn_core.batch`` and
other torch-free parts of the package start without paying for ``import torch``.
"""
from __future__ import annotations

import importlib

_PUBLIC = {
    "HypernetworkConfig": ".config", "HypernetworkInfo": ".config", "WEIGHT_INITIALIZATIONS": ".config",
    "derive_dropout_structure": ".config",
    "ACTIVATIONS": ".activations",
    "HypernetworkError": ".errors",
    "SUPPORTED_SUFFIXES": ".files", "load_hypernetwork": ".files", "save_hypernetwork": ".files",
    "Hypernetwork": ".network", "HypernetworkModule": ".network",
    "load_optimizer_state": ".optimizer_sidecar", "save_optimizer_state": ".optimizer_sidecar",
    "HypernetworkPatch": ".patch",
    "ScheduledHypernetwork": ".strength_profile", "StrengthProfile": ".strength_profile",
    "as_scheduled": ".strength_profile", "parse_block_weights": ".strength_profile",
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
