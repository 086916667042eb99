"""The affine map closest to a non-linear hypernetwork on the inputs it really sees.

A LoRA can only change weights, so a non-linear MLP must be replaced by an affine map
``x -> G x + g``. The best one in the least-squares sense over sample inputs ``x`` solves the
normal equations of ``[x, 1] theta = MLP(x)``. The fit is independent of the projection weight W
that follows: the least-squares fit of ``W MLP(x)`` is ``W`` times the fit of ``MLP(x)``.
Samples are folded into running sums (``X^T X``, ``X^T Y``), so any number of tokens costs
``dim^2`` memory. Cross-attention sees text-encoder outputs, self-attention the UNet's hidden
states: each (kind, dim) gets its own fit.
"""
from __future__ import annotations

import torch

from ..network.hypernetwork import Hypernetwork

# Ridge strengths tried, relative to the mean input variance; generalized cross-validation picks
# one per fit. Few tokens for a wide layer (a single 77-token prompt at width 768, a small latent
# at width 1280) would otherwise give a fit exact on the samples and wild elsewhere.
RIDGE_GRID = tuple(10.0 ** k for k in range(-9, 5))


class AffineFit:
    """Least-squares affine fits of several functions of the same inputs (keys and values)."""

    def __init__(self, dim: int, outputs: int = 2):
        self.dim = dim
        self.gram = torch.zeros(dim + 1, dim + 1, dtype=torch.float64)
        self.cross = [torch.zeros(dim + 1, dim, dtype=torch.float64) for _ in range(outputs)]
        self.target_energy = [0.0] * outputs
        self.samples = 0

    def add(self, x: torch.Tensor, targets: list[torch.Tensor]) -> None:
        x = x.detach().reshape(-1, self.dim).to("cpu", torch.float64)
        ones = torch.ones(x.shape[0], 1, dtype=torch.float64)
        xa = torch.cat([x, ones], dim=1)
        self.gram += xa.T @ xa
        for i, y in enumerate(targets):
            y = y.detach().reshape(-1, self.dim).to("cpu", torch.float64)
            self.cross[i] += xa.T @ y
            self.target_energy[i] += float(y.square().sum())
        self.samples += x.shape[0]

    def solve(self) -> list[tuple[tuple[torch.Tensor, torch.Tensor], float, float]]:
        """Per function: ((G, g), relative residual on the samples, relative error expected on new
        inputs from the same distribution (generalized cross-validation)).

        Ridge regression on centred inputs (the offset is not shrunk), its strength chosen by GCV
        from ``RIDGE_GRID``: in the eigenbasis of the inputs' covariance every candidate costs O(dim^2).
        """
        if self.samples == 0:
            raise ValueError(f"no calibration inputs of width {self.dim} were seen")
        n, d = float(self.samples), self.dim
        mean_x = self.gram[:d, d] / n
        covariance = self.gram[:d, :d] - n * torch.outer(mean_x, mean_x)
        eigenvalues, basis = torch.linalg.eigh(covariance)
        eigenvalues = eigenvalues.clamp_min(0.0)
        scale = float(eigenvalues.mean()) or 1.0
        out = []
        for cross, energy in zip(self.cross, self.target_energy):
            mean_y = cross[d] / n
            centred_cross = cross[:d] - n * torch.outer(mean_x, mean_y)
            centred_energy = energy - n * float(mean_y.square().sum())
            projected = (basis.T @ centred_cross).square().sum(dim=1)  # ||Q^T B||^2 per eigen-direction
            best = None
            for ridge in RIDGE_GRID:
                mu = ridge * scale
                shrink = 1.0 / (eigenvalues + mu)
                residual = centred_energy - float(((2 * shrink - eigenvalues * shrink ** 2) * projected).sum())
                freedom = float((eigenvalues * shrink).sum()) + 1.0  # + the offset
                if freedom >= n:
                    continue
                gcv = max(residual, 0.0) / (1.0 - freedom / n) ** 2
                if best is None or gcv < best[0]:
                    best = (gcv, mu, max(residual, 0.0))
            if best is None:  # fewer samples than any ridge can use: the constant map
                best = (centred_energy, float("inf"), centred_energy)
            gcv, mu, residual = best
            if mu == float("inf"):
                matrix = torch.zeros(d, d, dtype=torch.float64)
            else:
                matrix = (basis @ ((basis.T @ centred_cross) / (eigenvalues + mu)[:, None])).T
            offset = mean_y - matrix @ mean_x
            total = energy if energy > 0 else 1.0
            out.append(((matrix.contiguous(), offset), (residual / total) ** 0.5, (gcv / total) ** 0.5))
        return out


class NetworkFit:
    """Fits of a hypernetwork's key and value MLPs per (attention kind, dim), fed sample inputs."""

    def __init__(self, network: Hypernetwork):
        self.network = network
        self.fits: dict[tuple[str, int], AffineFit] = {}

    @torch.no_grad()
    def observe(self, kind: str, x: torch.Tensor) -> None:
        """One key input the network acts on in an attention layer of ``kind`` ('attn1'/'attn2')."""
        dim = int(x.shape[-1])
        if not self.network.has_dim(dim):
            return
        key_module, value_module = self.network.pair(dim)
        weight = next(key_module.parameters())
        x = x.detach().reshape(-1, dim).to(weight.device, weight.dtype)
        fit = self.fits.setdefault((kind, dim), AffineFit(dim))
        fit.add(x, [key_module(x), value_module(x)])

    def affines(self):
        """{(kind, dim): (key affine, value affine)} for ``lora_export.layer_changes``."""
        return {where: tuple(solution[0] for solution in fit.solve()) for where, fit in self.fits.items()}

    def residuals(self) -> dict[tuple[str, int], tuple[float, float, float, float, int]]:
        """{(kind, dim): (key residual, key expected, value residual, value expected, samples)}, relative
        to the MLP output: on the calibration tokens, and expected on new ones (cross-validation)."""
        out = {}
        for where, fit in self.fits.items():
            (_, key_residual, key_expected), (_, value_residual, value_expected) = fit.solve()
            out[where] = (key_residual, key_expected, value_residual, value_expected, fit.samples)
        return out
