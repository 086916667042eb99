"""A tiny stand-in for a diffusion model, so the training loop can be tested without ComfyUI.

The "model" adds the hypernetwork's output for each item's context to a scaled copy of the
noisy input; the target is epsilon. It is differentiable in the network and learnable.
"""
from __future__ import annotations

import torch

from hn_core import Hypernetwork, HypernetworkConfig, HypernetworkInfo
from hn_core.training import EpsilonTarget, TrainingData

DIM = 8


def make_network(seed: int = 0, **config) -> Hypernetwork:
    defaults = dict(layer_structure=(1, 2, 1), activation_func="relu")
    return Hypernetwork.create((DIM,), HypernetworkConfig(**{**defaults, **config}), HypernetworkInfo(name="toy"), seed)


def make_data(network: Hypernetwork, items: int = 5, seed: int = 0) -> TrainingData:
    generator = torch.Generator().manual_seed(seed)
    latents = [torch.randn(2, 4, 4, generator=generator) for _ in range(items)]
    contexts = [torch.randn(3, DIM, generator=generator) for _ in range(items)]
    sigmas = torch.linspace(0.05, 10.0, 50)

    def predict(noisy, sigma, indices):
        context = torch.stack([contexts[i] for i in indices])
        k, v = network.transform(context, context, 1.0)
        shift = (k + v).mean(dim=(1, 2)).view(-1, 1, 1, 1)
        return noisy * 0.1 + shift

    return TrainingData(latents=latents, sigmas=sigmas,
                        noise_scaling=lambda sigma, noise, clean: clean + sigma.view(-1, 1, 1, 1) * noise,
                        predict=predict, target=EpsilonTarget())


def weights(network: Hypernetwork) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in network.state_dict().items()}
