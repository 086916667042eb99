"""The one exception type the pack raises for bad hypernetwork input."""
from __future__ import annotations

import os


class HypernetworkError(Exception):
    """A hypernetwork file (or in-memory description) cannot be used.

    The message always names the file (when there is one) and what is wrong with it,
    so a ComfyUI user sees e.g. ``my_style.pt: weights contain NaN (dim 768, key module)``.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = os.fspath(path) if path is not None else None
        self.problem = problem
        where = os.path.basename(self.path) if self.path else "hypernetwork"
        super().__init__(f"{where}: {problem}" + (f" (file: {self.path})" if self.path else ""))
