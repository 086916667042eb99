"""MergeHypernetworks: several HYPERNETWORK inputs into one network (see hn_core.merge)."""
from __future__ import annotations

from ..hn_core.merge import MODES
from ..hn_comfy.merge.merge_sockets import MAX_INPUTS, merge_sockets
from ..hn_comfy.ui.types import HYPERNETWORK, MERGING_CATEGORY

REQUIRED_INPUTS = 2


def _weight(n: int):
    return ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01, "tooltip":
                      f"weighted sum: hypernetwork_{n}'s share (the weights are divided by their sum, so 1 and 1 "
                      f"is the mean, 3 and 1 is 75/25). exact stack: hypernetwork_{n}'s strength in the chain."})


def _socket(n: int):
    tooltip = (f"Network number {n}; in an exact stack it acts after networks 1..{n - 1}." if n > 1 else
               "The first network; in an exact stack it acts first (A1111 order).")
    return (HYPERNETWORK, {"tooltip": tooltip})


class MergeHypernetworks:
    DESCRIPTION = ("Merges hypernetworks into one that Save Hypernetwork writes as a single file (A1111 and "
                   "ComfyUI's built-in loader read it). 'weighted sum' blends the parameters of networks of the "
                   "same structure; 'exact stack' gives the linear network equal to applying the inputs one "
                   "after another at their weights, for linear networks of any layer structure.")
    CATEGORY = MERGING_CATEGORY
    RETURN_TYPES = (HYPERNETWORK, "STRING")
    RETURN_NAMES = ("hypernetwork", "summary")
    OUTPUT_TOOLTIPS = ("The merged network (a new one; the inputs are unchanged). Apply it at strength 1 to "
                       "get what the weights describe.",
                       "What was merged: mode, inputs and weights, the result's structure, dims that only "
                       "some inputs have.")
    FUNCTION = "merge"

    @classmethod
    def INPUT_TYPES(cls):
        required = {"mode": (list(MODES), {"default": MODES[0], "tooltip":
                    "weighted sum: each parameter is the weighted mean of the inputs' (same structure "
                    "needed; best for networks from one training run). exact stack: the single network "
                    "equal to applying input 1, then 2, ... at their weights (linear networks only)."})}
        optional = {}
        for n in range(1, MAX_INPUTS + 1):
            group = required if n <= REQUIRED_INPUTS else optional
            group[f"hypernetwork_{n}"] = _socket(n)
            group[f"weight_{n}"] = _weight(n)
        return {"required": required, "optional": optional, "hidden": {"unique_id": "UNIQUE_ID"}}

    def merge(self, mode, unique_id=None, **sockets):
        return merge_sockets(mode, sockets, unique_id)
