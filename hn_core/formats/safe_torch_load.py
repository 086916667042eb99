"""Load a torch pickle without ever executing code from it."""
from __future__ import annotations

import pickle
import re

import torch

from ..errors import HypernetworkError
from .pickle_inspection import foreign_imports

# What torch's restricted unpickler says when a file asks for a class or function it does not allow.
_FORBIDDEN = re.compile(r"Unsupported (global|class)[^\n]*|GLOBAL [\w.]+[^\n]*")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def load_pickle_safely(path) -> object:
    """torch.load restricted to tensors and plain containers (weights_only=True).

    A file that would need any other class or function is refused, never executed.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = _ANSI.sub("", str(exc))
        forbidden = foreign_imports(path) or ([_FORBIDDEN.search(text).group(0).strip()]
                                              if _FORBIDDEN.search(text) else [])
        if forbidden:
            raise HypernetworkError(
                path, "refused to load: the file asks to import code or objects other than tensors and "
                      f"plain containers ({', '.join(forbidden[:5])}). Nothing from it was executed.") from None
        raise HypernetworkError(path, f"corrupt file, or not a PyTorch file ({_detail(text)})") from None
    except Exception as exc:  # torch raises many types for damaged data; all mean "unreadable"
        raise HypernetworkError(path, f"corrupt or truncated file, cannot be read as a PyTorch file "
                                      f"({type(exc).__name__}: {_detail(_ANSI.sub('', str(exc)))})") from None


def _detail(text: str) -> str:
    # Keep torch's diagnosis, drop its advice (it suggests weights_only=False, which is unsafe).
    match = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
    if match:
        return match.group(1).strip()[:300]
    lines = [line for line in text.strip().splitlines() if line.strip() and "weights_only" not in line]
    return lines[0][:300] if lines else "no details"
