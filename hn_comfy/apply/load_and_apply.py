"""The one-node loader's work: LoadHypernetwork + ApplyHypernetwork in one call, same code paths."""
from __future__ import annotations

from ..files.model_folders import LOADED, file_signature, resolve_path
from .apply_network import apply_hypernetwork


def load_and_apply(model, hypernetwork_name: str, strength: float, node_id=None):
    """A clone of `model` with the named file applied at `strength` (speed path on), exactly as
    Load Hypernetwork feeding Apply Hypernetwork would produce; the cached load is shared with them."""
    network = LOADED.get(resolve_path(hypernetwork_name))
    return apply_hypernetwork(model, network, strength, speed_path=True, node_id=node_id)


def file_change_signature(hypernetwork_name: str):
    """IS_CHANGED value: re-run when the file on disk changes, even under the same name."""
    try:
        return str(file_signature(resolve_path(hypernetwork_name)))
    except Exception:  # the error is reported properly when the node runs
        return float("nan")
