"""The training loop's semantics, on a toy problem (no ComfyUI): steps, accumulation, clipping,
schedule end, seeds, resuming, cancellation, snapshots."""
from __future__ import annotations

import copy

import pytest
import torch

from hn_core.training import (OptimizerState, TrainingCallbacks, TrainingError, TrainingSettings,
                              copy_for_training, train)
from hn_core.training.batch_plan import micro_batches, step_generator
from tests.training.toy_problem import make_data, make_network, weights


def run(network, steps=6, data=None, callbacks=None, resume_from=None, **settings):
    data = data or make_data(network)
    options = dict(max_steps=steps, learning_rate="0.01", seed=3)
    options.update(settings)
    return train(network, data, TrainingSettings(**options), callbacks, resume_from)


def test_a_step_is_one_optimizer_update_and_logs_the_group_mean():
    network = make_network()
    updates = []
    result = run(network, steps=3, batch_size=2, gradient_accumulation=3,
                 callbacks=TrainingCallbacks(on_step=updates.append))
    assert network.info.step == 3 and len(result.losses) == 3
    assert [r.step for r in updates] == [1, 2, 3]
    assert result.optimizer_state.state_dict["state"][0]["step"].item() == 3  # AdamW stepped 3 times


def test_group_loss_is_the_mean_of_its_micro_batches():
    # One step of 2 micro-batches x 1 item logs the mean of the two items' losses (lr 0: weights fixed).
    network = make_network()
    data = make_data(network)
    result = run(network, steps=1, data=data, batch_size=1, gradient_accumulation=2, learning_rate="0")
    generator = step_generator(3, 0, "noise")
    expected = []
    for (index,) in micro_batches(3, 0, len(data.latents), 1, 2):
        timestep = torch.randint(0, len(data.sigmas), (1,), generator=generator)
        noise = torch.randn(tuple(data.latents[index].shape), generator=generator)[None]
        sigma, clean = data.sigmas[timestep], data.latents[index][None]
        with torch.no_grad():
            output = data.predict(data.noise_scaling(sigma, noise, clean), sigma, [index])
        expected.append(((output - noise) ** 2).mean().item())
    assert result.losses[0] == pytest.approx(sum(expected) / 2, rel=1e-6)


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = make_network(), make_network(), make_network()
    run(a, seed=1), run(b, seed=1), run(c, seed=2)
    wa, wb, wc = weights(a), weights(b), weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)


@pytest.mark.parametrize("config", [{}, {"is_layer_norm": True, "layer_structure": (1, 2, 2, 1), "use_dropout": True}])
def test_resume_equals_straight_run(config):
    straight = make_network(**config)
    run(straight, steps=8, batch_size=2, gradient_accumulation=2)

    first = make_network(**config)
    result = run(first, steps=4, batch_size=2, gradient_accumulation=2)
    resumed = copy_for_training(first)
    run(resumed, steps=8, batch_size=2, gradient_accumulation=2, resume_from=result.optimizer_state)
    a, b = weights(straight), weights(resumed)
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6


def test_schedule_end_stops_training_early():
    network = make_network()
    result = run(network, steps=10, learning_rate="0.01:4")
    assert network.info.step == 4 and len(result.losses) == 4 and result.schedule_ended


def test_steps_must_exceed_the_trained_steps():
    network = make_network()
    network.info.step = 5
    with pytest.raises(TrainingError, match="must be greater than"):
        run(network, steps=5)


def test_clipping_by_value_bounds_each_update():
    # SGD with lr 1: every parameter moves by at most the clip value per step.
    network = make_network()
    before = weights(network)
    run(network, steps=1, optimizer="SGD", weight_decay=0.0, learning_rate="1.0", clip_mode="value", clip_value="0.001")
    after = weights(network)
    assert max((after[k] - before[k]).abs().max().item() for k in after) <= 0.001 + 1e-7


def test_clipping_sees_unscaled_gradients_with_loss_scaling():
    plain, scaled = make_network(), make_network()
    options = dict(steps=2, optimizer="SGD", weight_decay=0.0, learning_rate="0.5", clip_mode="norm", clip_value="0.01")
    run(plain, **options)
    run(scaled, loss_scaling=True, **options)
    a, b = weights(plain), weights(scaled)
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6


def test_optimizer_state_of_another_optimizer_is_ignored(caplog):
    network = make_network()
    result = run(network, steps=2, optimizer="AdamW")
    again = copy_for_training(network)
    run(again, steps=4, optimizer="SGD", resume_from=result.optimizer_state)
    assert "saved for AdamW, not SGD" in caplog.text


@pytest.mark.parametrize("base", [Exception, BaseException], ids=["Exception", "BaseException"])
def test_cancel_stops_within_a_step_and_keeps_snapshots(base):
    # ComfyUI's InterruptProcessingException is an Exception up to 0.3.x and a BaseException in 0.33.
    network = make_network()
    snapshots = []

    class Cancelled(base):
        pass

    def cancel_after_3():
        if network.info.step >= 3:
            raise Cancelled()

    def snapshot(net, state):
        snapshots.append((net.info.step, copy.deepcopy(net.state_dict()), state.name))

    with pytest.raises(Cancelled):
        run(network, steps=10, snapshot_every=2,
            callbacks=TrainingCallbacks(check_cancel=cancel_after_3, on_snapshot=snapshot))
    assert network.info.step == 3
    assert [s[0] for s in snapshots] == [2]
    # Left usable for inference: eval mode, no gradients, none pending.
    assert not network.training and not any(p.requires_grad or p.grad is not None for p in network.parameters())


def test_network_is_left_in_eval_mode_without_gradients():
    network = make_network(use_dropout=True, layer_structure=(1, 2, 2, 1))
    run(network, steps=2)
    assert not network.training
    assert not any(p.requires_grad for p in network.parameters())


def test_resume_state_type():
    network = make_network()
    result = run(network, steps=1)
    assert isinstance(result.optimizer_state, OptimizerState) and result.optimizer_state.name == "AdamW"
