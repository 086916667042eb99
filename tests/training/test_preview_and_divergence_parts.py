"""hn_core's pieces for previews and divergence, without ComfyUI: the grid, which steps get
previews, the training pause, and stopping on a NaN/inf loss or weight."""
from __future__ import annotations

import pytest
import torch

from hn_core.training.preview_grid import preview_grid
from hn_core.training import TrainingCallbacks, TrainingDiverged, TrainingSettings, train
from hn_core.training.preview_plan import is_preview_step, preview_file_name, preview_subfolder
from tests.training.toy_problem import make_data, make_network, weights


def run(network, data=None, callbacks=None, **settings):
    options = {"max_steps": 7, "learning_rate": "0.01", "seed": 3, **settings}
    return train(network, data or make_data(network), TrainingSettings(**options), callbacks)


def test_grid_puts_prompts_in_rows_and_steps_in_columns():
    columns = [torch.full((2, 3, 4, 3), 10 * step + 1, dtype=torch.uint8) for step in range(3)]
    for step, column in enumerate(columns):
        column[1] += 5  # the second prompt's pictures differ from the first's
    grid = preview_grid(columns, gap=1)
    assert grid.shape == (1, 2 * 3 + 1, 3 * 4 + 2, 3) and grid.dtype == torch.float32
    for row in range(2):
        for step in range(3):
            cell = grid[0, row * 4:row * 4 + 3, step * 5:step * 5 + 4]
            assert torch.equal(cell, torch.full_like(cell, (10 * step + 1 + 5 * row) / 255))
    assert torch.equal(grid[0, 3], torch.ones_like(grid[0, 3]))  # the gap between rows is white


def test_grid_refuses_columns_of_different_shapes():
    with pytest.raises(ValueError, match="one shape"):
        preview_grid([torch.zeros(2, 4, 4, 3), torch.zeros(1, 4, 4, 3)])
    with pytest.raises(ValueError, match="no preview"):
        preview_grid([])


def test_preview_steps_and_names():
    assert [s for s in range(1, 12) if is_preview_step(s, 4, 11)] == [4, 8, 11]
    assert [s for s in range(1, 9) if is_preview_step(s, 4, 8)] == [4, 8]
    assert not any(is_preview_step(s, 0, 8) for s in range(1, 9))
    assert preview_file_name("style", 300, 1) == "style-300-1.png"
    assert preview_subfolder("style") == "hn_previews/style"


def test_previews_pause_training_without_changing_it():
    """The hook runs at steps 3, 6 and 7 (the last), in eval mode without autograd; it may draw
    from the global RNG and run the network, and training still ends bit-identical."""
    plain = make_network()
    plain_result = run(plain)
    seen = []

    def preview(net, report):
        seen.append((report.step, net.training, torch.is_grad_enabled()))
        torch.randn(100)  # a sampler drawing noise from the global RNG
        net.transform(torch.randn(2, 3, 8), torch.randn(2, 3, 8), 1.0)

    previewed = make_network()
    rng_before = torch.get_rng_state()
    result = run(previewed, callbacks=TrainingCallbacks(on_preview=preview, preview_every=3))
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert seen == [(3, False, False), (6, False, False), (7, False, False)]
    assert result.losses == plain_result.losses
    a, b = weights(plain), weights(previewed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_dropout_is_back_on_after_each_preview():
    structure = dict(layer_structure=(1, 2, 2, 1), use_dropout=True, dropout_structure=(0, 0.3, 0.3, 0))
    plain, previewed = make_network(**structure), make_network(**structure)
    run(plain)
    run(previewed, callbacks=TrainingCallbacks(on_preview=lambda net, report: None, preview_every=2))
    a, b = weights(plain), weights(previewed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_nan_loss_stops_at_its_step_before_the_update():
    network = make_network()
    data = make_data(network)
    predict, calls = data.predict, []

    def poisoned(noisy, sigma, indices):
        calls.append(1)
        output = predict(noisy, sigma, indices)
        return output * float("nan") if len(calls) == 4 else output  # the 4th step's batch

    data.predict = poisoned
    snapshots, after_step_3 = [], {}

    def on_step(report):
        if report.step == 3:
            after_step_3.update(weights(network))

    with pytest.raises(TrainingDiverged, match="diverged at step 4: the loss became nan") as caught:
        run(network, data=data, snapshot_every=1,
            callbacks=TrainingCallbacks(on_step=on_step, on_snapshot=lambda net, state: snapshots.append(
                net.info.step)))
    assert caught.value.step == 4 and snapshots == [1, 2, 3] and network.info.step == 3
    now = weights(network)
    assert all(torch.equal(now[k], after_step_3[k]) for k in now)  # step 4's update never happened
    assert not network.training  # left ready for inference, as after any error


def test_an_update_that_makes_weights_infinite_stops_before_any_snapshot_of_them():
    network = make_network()
    data = make_data(network)
    snapshots = []
    # A rate beyond float32's range: the first update overflows while its loss was still finite.
    with pytest.raises(TrainingDiverged, match="diverged at step 1: the optimizer's update"):
        run(network, data=data, learning_rate="1e39", snapshot_every=1,
            callbacks=TrainingCallbacks(on_snapshot=lambda net, state: snapshots.append(net.info.step)))
    assert snapshots == []
