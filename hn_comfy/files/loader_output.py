"""Load Hypernetwork's work: the network, its info text and card, the sidecar outputs, the preview."""
from __future__ import annotations

from ...hn_core import ScheduledHypernetwork
from ...hn_core.network.describe import describe_as_text
from .model_folders import LOADED, resolve_path
from .network_card import card_signature, card_text, read_card
from .preview_image import preview_ui_image


def loader_output(hypernetwork_name: str) -> dict:
    """``{"ui", "result"}`` with result (HYPERNETWORK, info, activation_text, preferred_weight)."""
    path = resolve_path(hypernetwork_name)
    network = LOADED.get(path)
    card = read_card(path)
    text = describe_as_text(network) + "\n" + card_text(card)
    ui = {"text": [text]}
    image = preview_ui_image(card.preview_path) if card.preview_path else None
    if image is not None:
        ui["images"] = [image]
    result = (ScheduledHypernetwork(network), text, card.metadata.activation_text, card.metadata.strength)
    return {"ui": ui, "result": result}


def loader_signature(hypernetwork_name: str):
    """For IS_CHANGED: re-run when the file or a sidecar changes on disk, even under the same name."""
    try:
        return str(card_signature(resolve_path(hypernetwork_name)))
    except Exception:  # the error is reported properly when the node runs
        return float("nan")
