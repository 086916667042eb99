"""The hypernetwork itself: per feature width ("dim"), one MLP for keys and one for values."""
from __future__ import annotations

from typing import Iterable

import torch

from .activations import is_linear, make_activation
from .config import HypernetworkConfig, HypernetworkInfo
from .weight_init import initialize_module


def build_sequential(dim: int, config: HypernetworkConfig) -> torch.nn.Sequential:
    """The layers of one MLP, in A1111's order, so state-dict indices match its files."""
    widths = config.hidden_widths(dim)
    if min(widths) < 1:
        raise ValueError(f"layer_structure {list(config.layer_structure)} gives a layer of width 0 at dim {dim}")
    steps = len(widths) - 1
    layers: list[torch.nn.Module] = []
    for i in range(steps):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        is_last = i == steps - 1
        if not is_linear(config.activation_func) and not (is_last and not config.activate_output):
            layers.append(make_activation(config.activation_func))
        if config.is_layer_norm:
            layers.append(torch.nn.LayerNorm(widths[i + 1]))
        p = config.dropout_after(i)
        if p > 0:
            layers.append(torch.nn.Dropout(p=p))
    return torch.nn.Sequential(*layers)


class HypernetworkModule(torch.nn.Module):
    """One MLP. Calling it returns MLP(x) only; the residual and strength are the caller's."""

    def __init__(self, dim: int, config: HypernetworkConfig):
        super().__init__()
        self.dim = dim
        self.linear = build_sequential(dim, config)
        self.config = config
        self.eval()  # dropout is a training device: never active unless training asks for it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class Hypernetwork(torch.nn.Module):
    """A set of (key, value) MLP pairs, one pair per dim, plus config and provenance."""

    def __init__(self, dims: Iterable[int], config: HypernetworkConfig, info: HypernetworkInfo | None = None,
                 device: torch.device | str | None = None):
        """`device="meta"` builds the structure without allocating or initialising weights,
        for loaders that assign the file's tensors afterwards."""
        super().__init__()
        self.config = config
        self.info = info if info is not None else HypernetworkInfo()
        dims = sorted({int(d) for d in dims})
        with torch.device(device or "cpu"):
            self.pairs = torch.nn.ModuleDict({
                str(dim): torch.nn.ModuleList([HypernetworkModule(dim, config), HypernetworkModule(dim, config)])
                for dim in dims
            })
        # Inference by default, as A1111's eval(): no dropout, no autograd bookkeeping.
        self.eval()
        self.requires_grad_(False)

    @classmethod
    def create(cls, dims: Iterable[int], config: HypernetworkConfig, info: HypernetworkInfo | None = None,
               seed: int | None = None) -> "Hypernetwork":
        """A new network with weights initialised per `config.weight_initialization`."""
        net = cls(dims, config, info)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        for dim in net.dims:
            for module in net.pair(dim):
                initialize_module(module.linear, config.weight_initialization, config.activation_func, generator)
        return net

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.pairs.keys())

    def has_dim(self, dim: int) -> bool:
        return str(dim) in self.pairs

    def pair(self, dim: int) -> tuple[HypernetworkModule, HypernetworkModule]:
        key_module, value_module = self.pairs[str(dim)]
        return key_module, value_module

    def transform(self, k: torch.Tensor, v: torch.Tensor, strength: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """k + strength*MLP_k(k), v + strength*MLP_v(v) for the dim of k; unchanged when absent.

        Computes in the weights' dtype and returns the inputs' dtype, so it works whatever
        precision the UNet's activations arrive in.
        """
        dim = k.shape[-1]
        if not self.has_dim(dim):
            return k, v
        key_module, value_module = self.pair(dim)
        weight = next(key_module.parameters())
        if weight.device != k.device:
            # The host moves patches with the model; follow the activations if it did not.
            self.to(k.device)
        weight_dtype = weight.dtype
        k_delta = key_module(k.to(weight_dtype)).to(k.dtype)
        v_delta = value_module(v.to(weight_dtype)).to(v.dtype)
        # One pass over memory for the residual (x + strength * delta), not two.
        return torch.add(k, k_delta, alpha=strength), torch.add(v, v_delta, alpha=strength)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def describe(self) -> dict:
        """Everything a user may want to see about a loaded network, as plain values."""
        c, i = self.config, self.info
        return {
            "name": i.name,
            "dims": list(self.dims),
            "layer_structure": list(c.layer_structure),
            "activation_func": c.activation_func,
            "is_layer_norm": c.is_layer_norm,
            "use_dropout": any(p > 0 for p in c.dropout_structure),
            "dropout_structure": list(c.dropout_structure),
            "activate_output": c.activate_output,
            "weight_initialization": c.weight_initialization,
            "parameter_count": self.parameter_count(),
            "step": i.step,
            "sd_checkpoint": i.sd_checkpoint,
            "sd_checkpoint_name": i.sd_checkpoint_name,
            "optional_info": i.optional_info,
        }
