"""Saving, loading (ours and ComfyUI's built-in loader), resuming, snapshots and cancelling."""
from __future__ import annotations

import os

import pytest
import torch

from tests.training import comfy_training as ct


def _builtin_outputs(comfy_host, model, filename, x, sigma, context):
    from tests.host import models

    loader = comfy_host.node_class("HypernetworkLoader")
    with torch.inference_mode():
        (patched,) = loader.execute(model, filename, 1.0).args
    return models.unet_forward(patched, x, sigma, context)


def test_saved_pt_loads_in_comfyuis_loader_and_ours_with_the_same_outputs(comfy_host, hypernetwork_dir):
    from tests.host import models

    model = ct.loader_built("sd1")
    latents, conditioning = ct.dataset(count=2)
    trained, hypernetwork, _, _ = ct.train(comfy_host, model, latents, conditioning, steps=3, learning_rate="1e-2",
                                           activation="relu", layer_norm=True, activate_output=True,
                                           name="styled", base_model_name="tiny-sd1")
    filename = ct.save(comfy_host, hypernetwork, "roundtrip")
    assert filename == "roundtrip.pt" and (hypernetwork_dir / "roundtrip.pt.optim").is_file()

    x, context = models.seeded_inputs(model, size=8)
    sigma = 2.0
    reference = models.unet_forward(trained, x, sigma, context)  # the node's own output MODEL
    plain = models.unet_forward(model, x, sigma, context)
    ours_loaded = ct.load(comfy_host, filename)
    apply = comfy_host.node_class("ApplyHypernetwork")
    with torch.inference_mode():
        (ours,) = apply().apply(model, ours_loaded, 1.0)
    torch.testing.assert_close(models.unet_forward(ours, x, sigma, context), reference, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(_builtin_outputs(comfy_host, model, filename, x, sigma, context), reference,
                               rtol=1e-4, atol=1e-5)
    assert (reference - plain).abs().max() > 1e-4  # the hypernetwork does change the output

    info = ours_loaded.network.info
    assert (info.name, info.step, info.sd_checkpoint_name) == ("styled", 3, "tiny-sd1")


@pytest.mark.parametrize("structure", [
    dict(dims="64, 768", layer_structure="1, 2, 2, 1", activation="relu", layer_norm=True, dropout="hidden layers"),
    dict(dims="auto"),  # linear: trained through the multiplied-out layers where a layer has enough tokens
], ids=["relu-layernorm-dropout", "linear"])
def test_resume_from_saved_files_equals_a_straight_run(comfy_host, structure):
    model = ct.loader_built("sd1")
    latents, conditioning = ct.dataset(count=3)
    options = dict(**structure, learning_rate="2e-3:6, 1e-3", batch_size=2, seed=11)
    _, straight, straight_losses, _ = ct.train(comfy_host, model, latents, conditioning, steps=20, **options)

    _, first, _, _ = ct.train(comfy_host, model, latents, conditioning, steps=10, **options)
    filename = ct.save(comfy_host, first, f"resume_me_{len(structure)}")
    loaded = ct.load(comfy_host, filename)  # Load Hypernetwork: weights from .pt, optimizer from .optim
    _, resumed, resumed_losses, steps = ct.train(comfy_host, model, latents, conditioning, hypernetwork=loaded,
                                                 steps=20, **options)
    assert steps == 20
    a, b = ct.weights_of(straight), ct.weights_of(resumed)
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    assert resumed_losses["loss"] == pytest.approx(straight_losses["loss"][10:], rel=1e-5)


def test_snapshots_are_complete_files(comfy_host, hypernetwork_dir):
    from comfy_extras.nodes_hypernetwork import load_hypernetwork_patch
    from hn_core import load_hypernetwork
    from hn_core.training import read_optimizer_sidecar

    model = ct.loader_built("sd1")
    latents, conditioning = ct.dataset(count=2)
    ct.train(comfy_host, model, latents, conditioning, name="snappy", steps=7, snapshot_every=3, dims="64",
             learning_rate="1e-3")
    folder = hypernetwork_dir / "snappy"
    assert sorted(os.listdir(folder)) == ["snappy-3.pt", "snappy-3.pt.optim", "snappy-6.pt", "snappy-6.pt.optim"]
    for step in (3, 6):
        path = folder / f"snappy-{step}.pt"
        network = load_hypernetwork(path)
        assert network.info.step == step and network.info.name == "snappy"
        assert read_optimizer_sidecar(path).name == "AdamW"
        assert load_hypernetwork_patch(str(path), 1.0) is not None
    assert "snappy/snappy-6.pt" in comfy_host.folder_paths.get_filename_list("hypernetworks")


def test_cancel_stops_within_a_step_keeps_snapshots_and_the_model(comfy_host, hypernetwork_dir, monkeypatch):
    """The user presses Cancel right after the step-4 snapshot is written: step 5 never completes.

    The cancel is triggered by the pack's own snapshot write, not by a progress value: ComfyUI
    >= 0.33 throttles progress-bar hook calls (100 ms / 0.5 %), so which values reach the hook
    depends on the machine's speed. What a user sees does not: the snapshots kept, the bar never
    ahead of the steps done, and the model as it was.
    """
    import comfy.model_management
    import comfy.utils

    snapshots = comfy_host.pack_module("hn_core.training.snapshots")
    save = snapshots.save_with_optimizer_state

    def save_then_cancel_after_step_4(network, path, state):
        save(network, path, state)
        if network.info.step == 4:
            comfy.model_management.interrupt_current_processing()

    monkeypatch.setattr(snapshots, "save_with_optimizer_state", save_then_cancel_after_step_4)
    model = ct.loader_built("sd1")
    latents, conditioning = ct.dataset(count=2)
    before = ct.model_fingerprint(model)
    shown = []

    def hook(value, total, preview, node_id=None):
        shown.append(value)

    previous = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            ct.train(comfy_host, model, latents, conditioning, name="cancelled", steps=50, snapshot_every=1,
                     dims="64", learning_rate="1e-3")
    finally:
        comfy.utils.set_progress_bar_global_hook(previous)
        comfy.model_management.interrupt_current_processing(False)
    assert sorted(os.listdir(hypernetwork_dir / "cancelled")) == [
        f"cancelled-{step}.pt{suffix}" for step in (1, 2, 3, 4) for suffix in ("", ".optim")]
    assert shown and shown[0] == 1 and shown == sorted(shown) and shown[-1] <= 4, shown
    ct.assert_same_fingerprint(before, ct.model_fingerprint(model))


def test_an_error_mid_training_leaves_the_model_as_it_was(comfy_host):
    model = ct.loader_built("sd1")
    latents, conditioning = ct.dataset(count=2)
    before = ct.model_fingerprint(model)
    with pytest.raises(FloatingPointError):
        ct.train(comfy_host, model, latents, conditioning, steps=5, dims="64", gradient_checkpointing=True,
                 learning_rate="1e-3", base_model_name="x", snapshot_every=1, name="explodes")
    ct.assert_same_fingerprint(before, ct.model_fingerprint(model))


@pytest.fixture(autouse=True)
def _explode_on_demand(request, monkeypatch, comfy_host):
    """For the error test: make the first snapshot write fail, from inside the training loop."""
    if request.node.name != "test_an_error_mid_training_leaves_the_model_as_it_was":
        return
    module = comfy_host.pack_module("hn_core.training.snapshots")

    def fail(*_args, **_kwargs):
        raise FloatingPointError("disk on fire")

    monkeypatch.setattr(module, "save_with_optimizer_state", fail)


def test_save_never_overwrites_silently(comfy_host, hypernetwork_dir):
    from hn_core import load_hypernetwork

    model = ct.loader_built("sd1")
    latents, conditioning = ct.dataset(count=2)
    _, first, _, _ = ct.train(comfy_host, model, latents, conditioning, steps=1, dims="64", learning_rate="1e-3")
    _, second, _, _ = ct.train(comfy_host, model, latents, conditioning, steps=2, dims="64", learning_rate="1e-3")
    assert ct.save(comfy_host, first, "keep/me") == "keep/me.pt"
    assert ct.save(comfy_host, second, "keep/me") == "keep/me_00001.pt"
    assert load_hypernetwork(hypernetwork_dir / "keep" / "me.pt").info.step == 1
    assert ct.save(comfy_host, second, "keep/me.pt", overwrite=True) == "keep/me.pt"
    assert load_hypernetwork(hypernetwork_dir / "keep" / "me.pt").info.step == 2
    assert not [p for p in os.listdir(hypernetwork_dir / "keep") if p.endswith(".tmp")]


def test_save_as_safetensors_reads_back_the_same(comfy_host, hypernetwork_dir):
    from hn_core import load_hypernetwork

    model = ct.loader_built("sd1")
    latents, conditioning = ct.dataset(count=2)
    _, trained, _, _ = ct.train(comfy_host, model, latents, conditioning, steps=2, dims="64, 768",
                                learning_rate="1e-3", activation="gelu")
    filename = ct.save(comfy_host, trained, "as_safetensors", format="safetensors")
    assert filename == "as_safetensors.safetensors"
    back = load_hypernetwork(hypernetwork_dir / filename)
    assert vars(back.config) == vars(trained.network.config) and back.info.step == 2
    assert all(torch.equal(v, ct.weights_of(trained)[k]) for k, v in back.state_dict().items())


@pytest.mark.parametrize("filename", ["../escape", "/abs/path", "a/../../b", ""])
def test_save_refuses_names_outside_the_folder(comfy_host, filename):
    model = ct.loader_built("sd1")
    latents, conditioning = ct.dataset(count=1)
    network = ct.train(comfy_host, model, latents, conditioning, steps=1, dims="64", learning_rate="0")[1]
    with pytest.raises(ValueError, match="inside models/hypernetworks"):
        ct.save(comfy_host, network, filename)
