"""Keep the model being trained *through* frozen, and make its weights usable by autograd.

ComfyUI runs every node under ``torch.inference_mode()``, so a model built by a loader node has
inference tensors as weights. Autograd refuses to save those for the backward pass ("Inference
tensors cannot be saved for backward"), even though only the hypernetwork is trained: the
backward through a frozen layer still needs that layer's weight. `materialize_inference_tensors`
fixes this once, in place, without a second copy of the model.
"""
from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import torch


def materialize_inference_tensors(modules: Iterable[torch.nn.Module]) -> int:
    """Replace each inference-tensor parameter and buffer with an ordinary copy; returns how many.

    An inference tensor stays one for life (swapping its ``.data`` is not enough: it still has no
    version counter, which every view and every saved-for-backward tensor needs), so each one is
    replaced on its module by a clone made outside inference mode: same name, same values, same
    requires_grad. The old tensor is released as it is replaced, so at most one tensor exists
    twice at any moment, and no second copy of the model is ever held. ComfyUI finds weights by
    name, so nothing else notices. Afterwards nothing is an inference tensor: calling this again
    costs nothing, and inference mode uses ordinary tensors just as well.
    """
    if torch.is_inference_mode_enabled():
        raise RuntimeError("materialize_inference_tensors must run outside torch.inference_mode()")
    replacements: dict[int, torch.Tensor] = {}  # a tensor shared by several modules stays shared
    for module in modules:
        for owner in module.modules():
            for table, make in ((owner._parameters, _ordinary_parameter), (owner._buffers, _ordinary_buffer)):
                for name, tensor in list(table.items()):
                    if tensor is None or not tensor.is_inference():
                        continue
                    if id(tensor) not in replacements:
                        replacements[id(tensor)] = make(tensor)
                    table[name] = replacements[id(tensor)]
    return len(replacements)


def _ordinary_parameter(parameter: torch.Tensor) -> torch.nn.Parameter:
    return torch.nn.Parameter(parameter.data.clone(), requires_grad=parameter.requires_grad)


def _ordinary_buffer(buffer: torch.Tensor) -> torch.Tensor:
    return buffer.data.clone()


@contextlib.contextmanager
def frozen(modules: Iterable[torch.nn.Module]) -> Iterator[None]:
    """No gradients for these modules' parameters for the duration; each flag restored afterwards.

    Train/eval flags are never touched: the frozen model stays in whatever mode it was in.
    """
    saved = []
    seen: set[int] = set()
    for module in modules:
        for parameter in module.parameters():
            if id(parameter) not in seen:
                seen.add(id(parameter))
                saved.append((parameter, parameter.requires_grad))
    try:
        for parameter, _ in saved:
            parameter.requires_grad_(False)
        yield
    finally:
        for parameter, flag in saved:
            parameter.requires_grad_(flag)
