"""Calibration inputs for the linear fit of a non-linear hypernetwork (hn_core.export.linear_fit).

Cross-attention: the text contexts of the CONDITIONING (the text-encoder outputs the network
rewrites). Self-attention: the hidden states each attn1 layer receives during a few sampling
steps of the model with the hypernetwork applied (as Apply Hypernetwork runs it), captured by
forward pre-hooks and folded into the fit's running sums.
"""
from __future__ import annotations

import contextlib

import torch

from ...hn_core.export.linear_fit import NetworkFit
from .probe_inputs import ProbeInputs, text_contexts
from ..apply.model_attention import attention_layers


def calibrate(applied, network, inputs: ProbeInputs, steps: int) -> NetworkFit:
    """Fit ``network`` on the contexts of ``inputs`` and on attn1 inputs of ``steps`` Euler steps of ``applied``."""
    fit = NetworkFit(network)
    for context in text_contexts(inputs.positive):
        fit.observe("attn2", context)
    if any(network.has_dim(module.to_k.in_features) for _p, kind, _b, module in attention_layers(applied)
           if kind == "attn1"):
        with _observe_self_attention(applied, fit):
            _sample(applied, inputs, steps)
    return fit


@contextlib.contextmanager
def _observe_self_attention(patcher, fit: NetworkFit):
    def hook(_module, args, kwargs):
        # attn1 is called with the normed hidden state first: the key input the network sees
        # (the attn1 patch rewrites only the context it passes beside it).
        fit.observe("attn1", args[0] if args else kwargs["x"])

    handles = []
    try:
        for _path, kind, _block, module in attention_layers(patcher):
            if kind == "attn1":
                handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _sample(patcher, inputs: ProbeInputs, steps: int) -> None:
    import comfy.sample

    generator = torch.Generator().manual_seed(inputs.seed + 1)
    noise = torch.randn(inputs.latent_shape, generator=generator)
    latent = torch.zeros(inputs.latent_shape)
    comfy.sample.sample(patcher, noise, steps, 1.0, "euler", "normal", inputs.positive, inputs.positive, latent,
                        seed=inputs.seed, disable_pbar=True)
