"""Load a torch pickle without ever executing code from it."""
from __future__ import annotations

import pickle

import torch

from .errors import HypernetworkError


def load_pickle_safely(path) -> object:
    """torch.load restricted to tensors and plain containers (weights_only=True).

    A file that would need any other class or function is refused, never executed.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" in text or "Unsupported" in text or "global" in text.lower():
            raise HypernetworkError(
                path, "refused to load: the file contains pickled code or objects other than tensors "
                      "and plain containers, which could run code on load. "
                      f"Only safe files are accepted. Details: {_first_line(text)}") from None
        raise HypernetworkError(path, f"corrupt or truncated file ({_first_line(text)})") from None
    except (RuntimeError, EOFError, ValueError, OSError, UnicodeDecodeError, KeyError) as exc:
        raise HypernetworkError(path, f"corrupt or truncated file, cannot be read as a PyTorch "
                                      f"file ({type(exc).__name__}: {_first_line(str(exc))})") from None


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else "no details"
