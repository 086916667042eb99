"""The smaller pieces of hn_core.training, without ComfyUI."""
from __future__ import annotations

import pytest
import torch

from hn_core import Hypernetwork, HypernetworkConfig
from hn_core.training import (DenoiserInversionTarget, EpsilonTarget, VelocityTarget, build_config, frozen,
                              gradient_checkpointing, materialize_inference_tensors, parse_dims)
from hn_core.training.batch_plan import micro_batches
from hn_core.training.resume import align_optimizer_state


# --- what each step sees ---------------------------------------------------------------------

def test_every_epoch_visits_every_item_once():
    seen = [i for step in range(6) for batch in micro_batches(7, step, 5, 2, 2) for i in batch]
    assert len(seen) == 24
    for epoch in range(4):
        assert sorted(seen[epoch * 5:(epoch + 1) * 5]) == list(range(5))


def test_a_steps_batches_depend_on_its_number_only():
    assert micro_batches(1, 9, 10, 3, 2) == micro_batches(1, 9, 10, 3, 2)
    assert micro_batches(1, 9, 10, 3, 2) != micro_batches(2, 9, 10, 3, 2)


# --- objective -------------------------------------------------------------------------------

def _comfy_v_denoised(sigma, output, noisy, sigma_data=1.0):
    # comfy.model_sampling.V_PREDICTION.calculate_denoised, written out.
    s = sigma.view(-1, 1, 1, 1)
    return (noisy * sigma_data ** 2 / (s ** 2 + sigma_data ** 2)
            - output * s * sigma_data / (s ** 2 + sigma_data ** 2) ** 0.5)


@pytest.mark.parametrize("sigma_data", [1.0, 0.5])
def test_v_target_is_what_comfyui_turns_back_into_the_clean_latent(sigma_data):
    generator = torch.Generator().manual_seed(0)
    clean, noise = torch.randn(3, 4, 8, 8, generator=generator), torch.randn(3, 4, 8, 8, generator=generator)
    sigma = torch.tensor([0.03, 1.0, 14.6])
    noisy = clean + sigma.view(-1, 1, 1, 1) * noise
    v = VelocityTarget(sigma_data)(clean, noise, sigma, noisy)
    torch.testing.assert_close(_comfy_v_denoised(sigma, v, noisy, sigma_data), clean, rtol=1e-5, atol=1e-5)
    # ... and with sigma_data 1 it is DDPM's alpha * noise - sqrt(1 - alpha_bar) * clean.
    if sigma_data == 1.0:
        alpha_bar = 1 / (1 + sigma.view(-1, 1, 1, 1) ** 2)
        torch.testing.assert_close(v, alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * clean)


def test_inversion_target_matches_the_closed_forms():
    generator = torch.Generator().manual_seed(1)
    clean, noise = torch.randn(2, 4, 4, 4, generator=generator), torch.randn(2, 4, 4, 4, generator=generator)
    sigma = torch.tensor([0.5, 3.0])
    noisy = clean + sigma.view(-1, 1, 1, 1) * noise
    eps = DenoiserInversionTarget(lambda s, out, x: x - out * s.view(-1, 1, 1, 1))
    torch.testing.assert_close(eps(clean, noise, sigma, noisy), EpsilonTarget()(clean, noise, sigma, noisy))
    v = DenoiserInversionTarget(_comfy_v_denoised)
    torch.testing.assert_close(v(clean, noise, sigma, noisy), VelocityTarget()(clean, noise, sigma, noisy),
                               rtol=1e-4, atol=1e-5)


# --- resuming A1111's optimizer state --------------------------------------------------------

def _adamw_state(network):
    optimizer = torch.optim.AdamW(network.parameters(), lr=0.1)
    for p in network.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    return optimizer.state_dict()


def test_a1111_dim_order_is_mapped_onto_ours():
    config = HypernetworkConfig(layer_structure=(1, 2, 1))
    ours = Hypernetwork.create((320, 768), config, seed=0)
    ours.requires_grad_(True)
    state = _adamw_state(ours)
    per_dim = len(list(ours.parameters())) // 2
    # A1111 keeps the file's dim order, e.g. 768 before 320: swap the two halves.
    swapped = {"state": {(i + per_dim) % (2 * per_dim): s for i, s in state["state"].items()},
               "param_groups": state["param_groups"]}
    aligned = align_optimizer_state(swapped, ours)
    assert aligned is not None
    for index, param_state in aligned["state"].items():
        assert torch.equal(param_state["exp_avg"], state["state"][index]["exp_avg"])


def test_state_for_another_structure_does_not_fit():
    a = Hypernetwork.create((320,), HypernetworkConfig(layer_structure=(1, 2, 1)), seed=0)
    b = Hypernetwork.create((320,), HypernetworkConfig(layer_structure=(1, 3, 1)), seed=0)
    a.requires_grad_(True)
    assert align_optimizer_state(_adamw_state(a), b) is None


# --- the frozen model ------------------------------------------------------------------------

def test_inference_tensors_become_usable_by_autograd_with_the_same_values():
    with torch.inference_mode():
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
        model.register_buffer("scale", torch.tensor(2.0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match="[Ii]nference tensor"):
        (model(x) * model.scale[None]).sum().backward()
    assert materialize_inference_tensors([model]) == 5
    assert materialize_inference_tensors([model]) == 0  # once only
    (model(x) * model.scale[None]).sum().backward()
    assert x.grad is not None
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_frozen_restores_requires_grad_even_on_error():
    model = torch.nn.Linear(2, 2)
    model.bias.requires_grad_(False)
    with pytest.raises(KeyError):
        with frozen([model]):
            assert not model.weight.requires_grad
            raise KeyError("boom")
    assert model.weight.requires_grad and not model.bias.requires_grad


def test_gradient_checkpointing_same_gradients_and_restores_forward():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ModuleList([torch.nn.Tanh()]), torch.nn.Linear(8, 1))

    def run(x):
        return model[2](model[1][0](model[0](x)))

    x = torch.randn(5, 4, requires_grad=True)
    run(x).sum().backward()
    expected = x.grad.clone()
    x.grad = None
    with gradient_checkpointing(model):
        assert "forward" in model[0].__dict__ and "forward" in model[1][0].__dict__
        run(x).sum().backward()
    torch.testing.assert_close(x.grad, expected)
    assert not any("forward" in m.__dict__ for m in model.modules())


# --- a new network's structure from widget text ------------------------------------------------

def test_dims_auto_and_explicit():
    assert parse_dims("auto", {768, 320}) == (320, 768)
    assert parse_dims(" 768, 320 ", {320, 640, 768}) == (320, 768)
    with pytest.raises(ValueError, match="dims 999 are not used by this model"):
        parse_dims("768, 999", {320, 768})
    with pytest.raises(ValueError, match="not a positive whole number"):
        parse_dims("768, abc", {768})


def test_config_from_widgets():
    config = build_config("1, 1.5, 1.5, 1", "swish", "KaimingNormal", True, "hidden layers", "", True)
    assert config.layer_structure == (1, 1.5, 1.5, 1) and config.dropout_structure == (0, 0.3, 0, 0)
    explicit = build_config("1,2,1", "relu", "Normal", False, "off", "0, 0.1, 0", False)
    assert explicit.use_dropout and explicit.dropout_structure == (0, 0.1, 0)
    with pytest.raises(ValueError, match="must start and end with 0"):
        build_config("1,2,1", "relu", "Normal", False, "off", "0.1, 0.1, 0", False)
    with pytest.raises(ValueError, match="adds no dropout"):
        build_config("1,2,1", "relu", "Normal", False, "hidden layers", "", False)
