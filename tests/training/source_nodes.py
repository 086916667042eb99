"""Test-only ComfyUI nodes with no inputs that hand out one prebuilt object (a MODEL, VAE, CLIP),
standing in for the loader nodes whose model files cannot exist here."""
from __future__ import annotations

from typing import Callable


def source_node(return_type: str, build: Callable[[], object], doc: str) -> type:
    """A node class whose one output, of `return_type`, is `build()`, made anew each run."""

    def make(self):
        return (build(),)

    return type(f"{return_type.title()}Source", (), {
        "__doc__": doc,
        "RETURN_TYPES": (return_type,),
        "FUNCTION": "make",
        "CATEGORY": "testing",
        "INPUT_TYPES": classmethod(lambda cls: {"required": {}}),
        "make": make,
    })
