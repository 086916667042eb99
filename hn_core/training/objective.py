"""The training objective: MSE between the model's raw output and its target, in the model's own
parameterization, as in A1111 and LDM training.

Noisy inputs follow ComfyUI's convention (``x = clean + sigma * noise`` for epsilon and v models;
the UNet sees ``x / sqrt(sigma^2 + sigma_data^2)``, i.e. DDPM's ``q_sample``). The node tells us
the parameterization; nothing here imports ComfyUI.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Tensor = torch.Tensor


def per_row(sigma: Tensor, like: Tensor) -> Tensor:
    """Reshape a per-sample sigma [B] so that it broadcasts over a [B, C, H, W] tensor."""
    return sigma.reshape(sigma.shape[:1] + (1,) * (like.ndim - 1)).to(like)


@dataclass(frozen=True)
class EpsilonTarget:
    """SD1.x / SDXL: the model predicts the noise."""

    def __call__(self, clean: Tensor, noise: Tensor, sigma: Tensor, noisy: Tensor) -> Tensor:
        return noise


@dataclass(frozen=True)
class VelocityTarget:
    """SD2.x-v: v = alpha * noise - sqrt(1 - alpha_bar) * clean, written with ComfyUI's sigma.

    With sigma_data = 1 this is (noise - sigma * clean) / sqrt(sigma^2 + 1), the exact inverse of
    ComfyUI's V_PREDICTION.calculate_denoised for x = clean + sigma * noise.
    """

    sigma_data: float = 1.0

    def __call__(self, clean: Tensor, noise: Tensor, sigma: Tensor, noisy: Tensor) -> Tensor:
        s = per_row(sigma, clean)
        sd = self.sigma_data
        return (noise * sd - clean * (s / sd)) / torch.sqrt(s * s + sd * sd)


@dataclass(frozen=True)
class DenoiserInversionTarget:
    """Any other parameterization: the raw output for which the model's own
    ``calculate_denoised(sigma, output, noisy)`` returns the clean latent.

    Every ComfyUI parameterization is affine in the output, so two evaluations give it exactly
    (up to rounding); used for models that are neither epsilon nor v (flow, x0, EDM).
    """

    calculate_denoised: Callable[[Tensor, Tensor, Tensor], Tensor]

    def __call__(self, clean: Tensor, noise: Tensor, sigma: Tensor, noisy: Tensor) -> Tensor:
        zero = self.calculate_denoised(sigma, torch.zeros_like(noisy), noisy)
        one = self.calculate_denoised(sigma, torch.ones_like(noisy), noisy)
        return (clean - zero) / (one - zero)


def per_sample_mse(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of each sample, in fp32 whatever dtype the model ran in: shape [B]."""
    diff = prediction.float() - target.float()
    return diff.pow(2).flatten(1).mean(dim=1)
