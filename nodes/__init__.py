"""Thin ComfyUI adapters around hn_core. Each node lives in its own module."""
from .apply_hypernetwork import ApplyHypernetwork
from .hypernetwork_strength import HypernetworkStrength
from .load_hypernetwork import LoadHypernetwork
from .save_hypernetwork import SaveHypernetwork
from .train_hypernetwork import TrainHypernetwork

# Only nodes whose work is built are registered.
NODE_CLASS_MAPPINGS = {
    "LoadHypernetwork": LoadHypernetwork,
    "ApplyHypernetwork": ApplyHypernetwork,
    "HypernetworkStrength": HypernetworkStrength,
    "TrainHypernetwork": TrainHypernetwork,
    "SaveHypernetwork": SaveHypernetwork,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadHypernetwork": "Load Hypernetwork (A1111)",
    "ApplyHypernetwork": "Apply Hypernetwork",
    "HypernetworkStrength": "Hypernetwork Strength",
    "TrainHypernetwork": "Train Hypernetwork",
    "SaveHypernetwork": "Save Hypernetwork",
}
