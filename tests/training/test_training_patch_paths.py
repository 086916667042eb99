"""The training patch's speed paths give the plain path's outputs and gradients, dropout included.

Plain path: every layer runs the whole network on its own inputs (Hypernetwork.transform, as
A1111 does), no gradient checkpointing. Speed paths: the text context shared by the model call
(only up to the first dropout when there is one) and, under checkpointing, the network run once
per layer with its result handed to the layer's recomputation.
"""
from __future__ import annotations

import pytest
import torch

from hn_core import Hypernetwork, HypernetworkConfig
from hn_core.training import TrainingPatch, gradient_checkpointing
from hn_core.training.checkpointing import CheckpointRegion

DIM = 16
BLOCKS = range(3)  # seeds of the blocks' frozen projections
STRUCTURES = {
    "relu-ln": dict(activation_func="relu", is_layer_norm=True),
    "swish-ln-dropout": dict(activation_func="swish", is_layer_norm=True, use_dropout=True,
                             dropout_structure=(0, 0.3, 0)),
    "tanh-ln-2-dropouts-no-output-activation": dict(
        layer_structure=(1, 2, 1.5, 1), activation_func="tanh", is_layer_norm=True, use_dropout=True,
        dropout_structure=(0, 0.2, 0.4, 0), activate_output=False),
    "linear": {},
}


class _Block(torch.nn.Module):
    """An attention-like layer: self-attention keys/values from its normed input, cross-attention
    from the text context, mixed through a frozen projection."""

    def __init__(self, seed: int):
        super().__init__()
        self.proj = torch.nn.Linear(DIM, DIM, dtype=torch.float64)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(DIM, DIM, generator=torch.Generator().manual_seed(seed),
                                               dtype=torch.float64) / DIM ** 0.5)
            self.proj.bias.zero_()
        self.proj.requires_grad_(False)
        self.patch = None

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.layer_norm(x, (DIM,))
        _, k, v = self.patch(h, h, h, {})
        _, ck, cv = self.patch(h, context, context, {})
        weights = torch.softmax(h @ torch.cat([k, ck], 1).transpose(1, 2), dim=-1)
        return x + self.proj(weights @ torch.cat([v, cv], 1))


def _network(structure: str) -> Hypernetwork:
    config = HypernetworkConfig(weight_initialization="XavierNormal", **STRUCTURES[structure])
    network = Hypernetwork.create([DIM], config, seed=0).double()
    network.train()
    return network.requires_grad_(True)


def _train_once(structure: str, share: bool, checkpointing: bool):
    """Outputs, gradients (network, input) and how often the key MLP's first layer ran."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 40, DIM, generator=generator, dtype=torch.float64).requires_grad_(True)
    context = torch.randn(2, 7, DIM, generator=generator, dtype=torch.float64)
    network = _network(structure)
    calls = []
    network.pair(DIM)[0].linear[0].register_forward_hook(lambda *_: calls.append(1))
    patch = TrainingPatch(network)
    root = torch.nn.Module()
    root.blocks = torch.nn.ModuleList([_Block(seed) for seed in BLOCKS])
    for block in root.blocks:
        block.patch = patch
    torch.manual_seed(5)  # the trainer seeds the global RNG per step: dropout draws from it
    with gradient_checkpointing(root, checkpointing):
        patch.share_context(context if share else None)
        out = x
        for block in root.blocks:
            out = block(out, context)
        out.square().sum().backward()
    return out.detach(), [p.grad for p in network.parameters()] + [x.grad], len(calls)


@pytest.mark.parametrize("structure", list(STRUCTURES))
@pytest.mark.parametrize("share, checkpointing", [(True, False), (False, True), (True, True)])
def test_speed_paths_give_the_plain_paths_outputs_and_gradients(structure, share, checkpointing):
    plain_out, plain_grads, plain_calls = _train_once(structure, share=False, checkpointing=False)
    out, grads, calls = _train_once(structure, share, checkpointing)
    torch.testing.assert_close(out, plain_out, rtol=1e-12, atol=1e-12)
    assert len(grads) == len(plain_grads)
    for grad, plain in zip(grads, plain_grads):
        torch.testing.assert_close(grad, plain, rtol=1e-10, atol=1e-12)
    if structure != "linear":  # (a linear network runs as its folded product instead)
        # Never recomputed: checkpointing adds no run; the context's first layer runs once, not
        # once per block (it comes before any dropout).
        assert calls == plain_calls - (len(BLOCKS) - 1) * share


def test_dropout_draws_differ_per_layer_as_in_a1111():
    # The shared context must not reuse one dropout mask for every layer: A1111 runs the
    # network in each layer, so each layer's context rewrite is drawn afresh.
    network = _network("swish-ln-dropout")
    context = torch.randn(1, 7, DIM, dtype=torch.float64)
    patch = TrainingPatch(network)
    patch.share_context(context)
    first = patch(None, context, context, {})[1]
    second = patch(None, context, context, {})[1]
    assert not torch.equal(first, second)
    network.eval()  # no dropout: one shared result
    patch.share_context(context)
    assert patch(None, context, context, {})[1] is patch(None, context, context, {})[1]


def test_region_hands_out_what_was_kept_once_in_order():
    region = CheckpointRegion()
    region.keep("a")
    region.keep("b")
    assert (region.take(), region.take(), region.take()) == ("a", "b", None)
