"""hn_core: A1111-compatible hypernetworks in plain torch. Never imports ComfyUI."""
from .config import HypernetworkConfig, HypernetworkInfo, WEIGHT_INITIALIZATIONS, derive_dropout_structure
from .activations import ACTIVATIONS
from .errors import HypernetworkError
from .files import SUPPORTED_SUFFIXES, load_hypernetwork, save_hypernetwork
from .network import Hypernetwork, HypernetworkModule
from .optimizer_sidecar import load_optimizer_state, save_optimizer_state
from .patch import HypernetworkPatch
from .strength_profile import ScheduledHypernetwork, StrengthProfile, as_scheduled, parse_block_weights

__all__ = [
    "ACTIVATIONS", "Hypernetwork", "HypernetworkConfig", "HypernetworkError", "HypernetworkInfo",
    "HypernetworkModule", "HypernetworkPatch", "SUPPORTED_SUFFIXES", "WEIGHT_INITIALIZATIONS",
    "derive_dropout_structure", "load_hypernetwork", "load_optimizer_state", "save_hypernetwork",
    "save_optimizer_state", "ScheduledHypernetwork", "StrengthProfile", "as_scheduled", "parse_block_weights",
]
