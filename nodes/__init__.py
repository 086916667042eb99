"""Thin ComfyUI adapters around hn_core. Each node lives in its own module."""
from .apply_hypernetwork import ApplyHypernetwork
from .apply_prompt_hypernetworks import ApplyPromptHypernetworks
from .bake_hypernetwork import BakeHypernetwork
from .hypernetwork_strength import HypernetworkStrength
from .hypernetwork_loader_a1111 import HypernetworkLoaderA1111
from .hypernetwork_to_lora import HypernetworkToLoRA
from .load_hypernetwork import LoadHypernetwork
from .merge_hypernetworks import MergeHypernetworks
from .save_hypernetwork import SaveHypernetwork
from .train_hypernetwork import TrainHypernetwork

# Only nodes whose work is built are registered.
NODE_CLASS_MAPPINGS = {
    "LoadHypernetwork": LoadHypernetwork,
    "ApplyHypernetwork": ApplyHypernetwork,
    "HypernetworkStrength": HypernetworkStrength,
    "TrainHypernetwork": TrainHypernetwork,
    "SaveHypernetwork": SaveHypernetwork,
    "HypernetworkToLoRA": HypernetworkToLoRA,
    "BakeHypernetwork": BakeHypernetwork,
    "MergeHypernetworks": MergeHypernetworks,
    "HypernetworkLoaderA1111": HypernetworkLoaderA1111,
    "ApplyPromptHypernetworks": ApplyPromptHypernetworks,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadHypernetwork": "Load Hypernetwork (A1111)",
    "ApplyHypernetwork": "Apply Hypernetwork",
    "HypernetworkStrength": "Hypernetwork Strength",
    "TrainHypernetwork": "Train Hypernetwork",
    "SaveHypernetwork": "Save Hypernetwork",
    "HypernetworkToLoRA": "Hypernetwork to LoRA",
    "BakeHypernetwork": "Bake Hypernetwork",
    "MergeHypernetworks": "Merge Hypernetworks",
    "HypernetworkLoaderA1111": "Load Hypernetwork (A1111 exact)",
    "ApplyPromptHypernetworks": "Apply Hypernetworks from Prompt (A1111 tags)",
}
