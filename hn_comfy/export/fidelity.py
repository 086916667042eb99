"""How close an exported model (LoRA or bake) is to Apply Hypernetwork: attention outputs and one UNet step.

One evaluation of each model at the same noisy latent, sigma and conditioning, through ComfyUI's
own sampling path (conds, transformer options and patches as under a KSampler). Errors are
relative to the hypernetwork's effect, ``||exported - applied|| / ||applied - plain||``: the share
of the change that the export gets wrong. Attention outputs are the outputs of every attn1 /
attn2 module in that step, summed per kind.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from .probe_inputs import ProbeInputs, probe_latent, probe_sigma
from ..apply.model_attention import attention_layers


@dataclass
class Fidelity:
    unet: float  # one UNet step, relative to the effect
    attention: dict[str, float] = field(default_factory=dict)  # per kind, relative to the effect
    effect: float = 0.0  # ||applied - plain|| / ||plain|| of the UNet output (how strong the network is)
    sigma: float = 0.0

    def as_dict(self) -> dict:
        return {"unet": self.unet, "attention": dict(self.attention), "effect": self.effect, "sigma": self.sigma}

    def text(self) -> str:
        parts = [f"one UNet step (sigma {self.sigma:.3g}): {self.unet:.3g}"]
        parts += [f"{kind} outputs: {error:.3g}" for kind, error in sorted(self.attention.items())]
        return ("error relative to the hypernetwork's effect - " + ", ".join(parts)
                + f" (the effect is {self.effect:.3g} of the UNet output)")


def measure(plain, applied, exported, inputs: ProbeInputs) -> Fidelity:
    """Compare ``exported`` with ``applied`` (Apply Hypernetwork) and ``plain`` (the input model)."""
    sigma = probe_sigma(plain)
    x = probe_latent(inputs, sigma)
    applied_out, applied_attention = _evaluate(applied, x, sigma, inputs.positive)
    plain_out, effect_energy = _evaluate(plain, x, sigma, inputs.positive, compare_with=applied_attention)
    exported_out, error_energy = _evaluate(exported, x, sigma, inputs.positive, compare_with=applied_attention)
    effect = (applied_out - plain_out).double().norm()
    fidelity = Fidelity(unet=_ratio((exported_out - applied_out).double().norm(), effect),
                        effect=_ratio(effect, plain_out.double().norm()), sigma=sigma)
    for kind in effect_energy:
        fidelity.attention[kind] = _ratio(error_energy[kind] ** 0.5, effect_energy[kind] ** 0.5)
    return fidelity


def _ratio(numerator, denominator) -> float:
    numerator, denominator = float(numerator), float(denominator)
    if denominator == 0.0:
        return 0.0 if numerator == 0.0 else float("inf")
    return numerator / denominator


def _evaluate(patcher, x, sigma, positive, compare_with=None):
    """(UNet output, attention record): the outputs per layer, or with ``compare_with`` the squared
    distance to those outputs summed per kind."""
    record: dict = {}

    def make_hook(path, kind):
        def hook(_module, _args, _kwargs, output):
            out = output.detach().float().cpu()
            if compare_with is None:
                record.setdefault(path, []).append(out)
            else:
                index = counters.setdefault(path, 0)
                counters[path] = index + 1
                reference = compare_with[path][index]
                record[kind] = record.get(kind, 0.0) + float((out.double() - reference.double()).square().sum())
        return hook

    counters: dict[str, int] = {}
    with _hooks(patcher, make_hook):
        out = _one_step(patcher, x, sigma, positive)
    return out, record


@contextlib.contextmanager
def _hooks(patcher, make_hook):
    handles = []
    try:
        for path, kind, _block, module in attention_layers(patcher):
            handles.append(module.register_forward_hook(make_hook(path, kind), with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _one_step(patcher, x, sigma, positive) -> torch.Tensor:
    """The denoised output of one model evaluation, as a KSampler's first call would make it."""
    import comfy.samplers

    captured = []
    sigma_t = torch.tensor([float(sigma)])

    def one_call(model, noise, _sigmas, extra_args=None, callback=None, disable=None):
        ones = noise.new_ones([x.shape[0]])
        captured.append(model(x.to(noise.device), sigma_t.to(noise.device) * ones, **(extra_args or {})))
        return noise

    sigmas = torch.tensor([float(sigma), 0.0])
    comfy.samplers.sample(patcher, torch.zeros_like(x), positive, positive, 1.0, patcher.load_device,
                          comfy.samplers.KSAMPLER(one_call), sigmas, latent_image=torch.zeros_like(x),
                          seed=0, disable_pbar=True)
    return captured[0].float().cpu()
