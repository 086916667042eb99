"""A linear hypernetwork pair as one trainable affine map, for fast training.

Without activation, layer norm or dropout, each MLP is affine, MLP(x) = A x + c, so a key/value
pair with its residual is one map: ``[k'; v'] = [I + A_k; I + A_v] x + [c_k; c_v]``. Multiplying
the Linear layers together once per model call and applying the product to every layer's tokens
replaces four matmuls of width 2*dim per token with one of width dim. Gradients reach every
Linear's weight and bias through the product, so training is mathematically the same (only the
rounding differs), and the saved weights stay A1111's layers.

The product is built by a custom autograd function that keeps its inputs as plain attributes
instead of saved tensors: it may first be needed inside a gradient-checkpointed layer, and a
recomputation of that layer reuses the product instead of building it again, which checkpointing
accepts only when the product's own backward saved nothing through its hooks.
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from ..network.hypernetwork import Hypernetwork

# The product costs about 6*dim^3 multiply-adds (forward and backward) per model call and saves
# about 9*dim^2 per token; every dim of an SD UNet serves four or more layers of equal token
# count, so folding pays once one layer has more than dim/6 tokens.
FOLD_TOKENS_PER_DIM = 1 / 6


def is_affine(network: Hypernetwork) -> bool:
    """Only Linear layers: no activation, layer norm or dropout in any MLP (the structure decides)."""
    return all(isinstance(layer, torch.nn.Linear)
               for dim in network.dims for module in network.pair(dim) for layer in module.linear)


def worth_folding(tokens: int, dim: int) -> bool:
    return tokens >= dim * FOLD_TOKENS_PER_DIM


def residual_pair_map(network: Hypernetwork, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(matrix [2*dim, dim], offset [2*dim]) with ``x @ matrix.T + offset == [k'(x), v'(x)]``,
    differentiable with respect to the network's parameters."""
    key_module, value_module = network.pair(dim)
    tensors = []
    for module in (key_module, value_module):
        for layer in module.linear:
            tensors += [layer.weight, layer.bias]
    return _ResidualPairMap.apply(len(key_module.linear), *tensors)


def apply_pair_map(pair_map: tuple[torch.Tensor, torch.Tensor], k: torch.Tensor,
                   v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """k', v' in the inputs' dtype, computed in the map's dtype (as Hypernetwork.transform does)."""
    matrix, offset = pair_map
    dim = matrix.shape[1]
    if k is v:  # self-attention: keys and values share their input, so one matmul gives both
        both = torch.nn.functional.linear(k.to(matrix.dtype), matrix, offset).to(k.dtype)
        return both[..., :dim], both[..., dim:]
    new_k = torch.nn.functional.linear(k.to(matrix.dtype), matrix[:dim], offset[:dim]).to(k.dtype)
    new_v = torch.nn.functional.linear(v.to(matrix.dtype), matrix[dim:], offset[dim:]).to(v.dtype)
    return new_k, new_v


class _ResidualPairMap(torch.autograd.Function):
    """Inputs: the layer count per MLP, then weight, bias of each Linear, key MLP first."""

    @staticmethod
    def forward(ctx, layer_count: int, *tensors: torch.Tensor):
        matrices, offsets, ctx.chains = [], [], []
        for first in (0, 2 * layer_count):
            layers = [(tensors[i], tensors[i + 1]) for i in range(first, first + 2 * layer_count, 2)]
            matrix, offset = layers[0]
            prefixes = []  # (product, offset) before each later layer, for its weight's gradient
            for weight, bias in layers[1:]:
                prefixes.append((matrix, offset))
                matrix, offset = weight @ matrix, torch.addmv(bias, weight, offset)
            ctx.chains.append((layers, prefixes))
            matrices.append(matrix)
            offsets.append(offset)
        matrix = torch.cat(matrices)  # a new tensor, so the identity can be added in place
        dim = matrix.shape[1]
        matrix.view(2, dim, dim).diagonal(dim1=1, dim2=2).add_(1)
        return matrix, torch.cat(offsets)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_matrix, grad_offset):
        grads = []
        for index, (layers, prefixes) in enumerate(ctx.chains):
            dim = layers[0][0].shape[1]
            rows = slice(index * dim, (index + 1) * dim)
            g_matrix = grad_matrix[rows] if grad_matrix is not None else layers[0][0].new_zeros(dim, dim)
            g_offset = grad_offset[rows] if grad_offset is not None else layers[0][0].new_zeros(dim)
            module_grads = []  # (weight, bias) gradients from the last layer back to the first
            for (weight, _bias), (matrix, offset) in zip(reversed(layers[1:]), reversed(prefixes)):
                module_grads.append((g_matrix @ matrix.T + torch.outer(g_offset, offset), g_offset))
                g_matrix, g_offset = weight.T @ g_matrix, weight.T @ g_offset
            module_grads.append((g_matrix, g_offset))
            grads += [g for pair in reversed(module_grads) for g in pair]
        return (None, *grads)
