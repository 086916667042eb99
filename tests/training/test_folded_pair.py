"""The folded (multiplied-out) path of a linear hypernetwork trains exactly like its layers."""
from __future__ import annotations

import pytest
import torch
import torch.utils.checkpoint

from hn_core import Hypernetwork, HypernetworkConfig
from hn_core.training import TrainingPatch
from hn_core.training.folded_pair import _ResidualPairMap, is_affine, residual_pair_map

DIM = 16


def _linear_network(layer_structure=(1, 2, 1), dim: int = DIM) -> Hypernetwork:
    network = Hypernetwork.create([dim], HypernetworkConfig(layer_structure=layer_structure,
                                                           weight_initialization="XavierNormal"), seed=0).double()
    network.train()
    return network.requires_grad_(True)


@pytest.mark.parametrize("layer_structure", [(1, 2, 1), (1, 1), (1, 1.5, 1.5, 1)])
def test_product_gradients_match_finite_differences(layer_structure):
    network = _linear_network(layer_structure, dim=4)  # small: finite differences cost one call per weight
    tensors = [t.detach().clone().requires_grad_(True) for m in network.pair(4) for layer in m.linear
               for t in (layer.weight, layer.bias)]
    count = len(network.pair(4)[0].linear)
    assert torch.autograd.gradcheck(lambda *t: _ResidualPairMap.apply(count, *t), tensors)


def test_only_structures_of_linear_layers_fold():
    assert is_affine(_linear_network())
    for changes in ({"activation_func": "relu"}, {"is_layer_norm": True}, {"use_dropout": True}):
        config = HypernetworkConfig(layer_structure=(1, 2, 2, 1), **changes)
        assert not is_affine(Hypernetwork.create([DIM], config, seed=0))


def _layers(patch: TrainingPatch, x: torch.Tensor, other: torch.Tensor, checkpointing: bool) -> torch.Tensor:
    """Three attention-like layers that each patch their input; the first is where the product is
    built, inside a checkpointed layer when asked (its recomputation then reuses the product)."""
    def layer(h):
        _, k, v = patch(h, h, h, {})
        _, k2, v2 = patch(h, h * 2, h + 1, {})  # keys and values from different tensors
        return torch.tanh(k * v + k2 - v2)

    for _ in range(3):
        x = torch.utils.checkpoint.checkpoint(layer, x, use_reentrant=False) if checkpointing else layer(x)
    return x + other


@pytest.mark.parametrize("checkpointing", [False, True])
def test_folded_training_patch_gives_the_layers_outputs_and_gradients(checkpointing):
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 40, DIM, generator=generator, dtype=torch.float64)  # 40 tokens: worth folding at 16
    results = []
    for fold in (True, False):
        network = _linear_network()
        patch = TrainingPatch(network)
        patch._affine = fold
        patch.share_context(None)
        out = _layers(patch, x, 0, checkpointing)
        (out.square().sum()).backward()
        assert bool(patch._pair_maps) == fold
        results.append((out.detach(), [p.grad.clone() for p in network.parameters()]))
    (folded_out, folded_grads), (plain_out, plain_grads) = results
    torch.testing.assert_close(folded_out, plain_out, rtol=1e-12, atol=1e-12)
    for folded, plain in zip(folded_grads, plain_grads):
        torch.testing.assert_close(folded, plain, rtol=1e-10, atol=1e-12)


def test_few_tokens_keep_the_layers():
    patch = TrainingPatch(_linear_network())
    patch.share_context(torch.randn(1, 2, DIM, dtype=torch.float64))  # 2 tokens: the product costs more
    assert patch._pair_maps == {}
    patch(None, torch.randn(1, 2, DIM, dtype=torch.float64), torch.randn(1, 2, DIM, dtype=torch.float64), {})
    assert patch._pair_maps == {}
    x = torch.randn(1, 64, DIM, dtype=torch.float64)
    patch(x, x, x, {})
    assert set(patch._pair_maps) == {DIM}
    matrix, offset = residual_pair_map(patch.network, DIM)
    assert matrix.shape == (2 * DIM, DIM) and offset.shape == (2 * DIM,)
