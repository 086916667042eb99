"""TrainHypernetwork's previews on the real in-process ComfyUI: files at the right steps, pictures
on the node, the grid output, bit-identical training with and without them, refusals, and a run
that diverges stopping cleanly."""
from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
import torch
from PIL import Image

from tests.training import comfy_training as ct

SIZE = 32  # pixels: a 4x4 latent through the tiny VAE (8x)
PREVIEW = dict(preview_every=2, preview_seed=5, preview_steps=3, preview_cfg=3.0, preview_sampler="euler",
               preview_scheduler="normal", preview_width=SIZE, preview_height=SIZE)
TRAINING = dict(steps=5, learning_rate="5e-3", activation="relu", dropout="hidden + last layer", seed=3)


def _prompts(count: int, seed: int = 99) -> list:
    """CONDITIONINGs as CLIP Text Encode makes them (under inference mode), one per preview prompt."""
    generator = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        return [[[torch.randn(1, 77, 768, generator=generator), {}]] for _ in range(count)]


@pytest.fixture
def output_dir(comfy_host):
    return comfy_host.folder_paths.get_output_directory()


@contextlib.contextmanager
def _progress_hook_calls():
    """What reaches ComfyUI's progress hook (the one main.py installs to send previews to the
    browser): a list of (value, total, preview, node_id), one per call."""
    import comfy.utils

    seen = []
    previous = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None, **_: seen.append(
        (value, total, preview, node_id)))
    try:
        yield seen
    finally:
        comfy.utils.set_progress_bar_global_hook(previous)


@pytest.fixture
def node_previews(comfy_host):
    with _progress_hook_calls() as seen:
        yield seen


def _train_with_previews(comfy_host, model, latents, conditioning, name, **widgets) -> dict:
    return ct.train_node_output(comfy_host, model, latents, conditioning, name=name, **TRAINING, **PREVIEW,
                                **widgets, list_inputs={"preview_vae": [ct.tiny_vae()], "preview_positive": _prompts(2),
                                                        "preview_negative": _prompts(1, seed=7)})


@pytest.fixture(scope="module")
def with_previews(comfy_host):
    """One training run with two preview prompts (one shared negative), previews every 2 of 5 steps."""
    model = ct.loader_built("sd1")
    latents, conditioning = ct.dataset(count=3)
    with _progress_hook_calls() as seen:
        output = _train_with_previews(comfy_host, model, latents, conditioning, "previewed")
    return {"model": model, "data": (latents, conditioning), "output": output, "hook": seen}


def test_previews_are_saved_at_the_right_steps(with_previews, output_dir):
    folder = os.path.join(output_dir, "hn_previews", "previewed")
    # base model first, then every 2 steps and the last step (5), one file per prompt
    expected = [f"previewed-{step}-{index}.png" for step in ("base", 2, 4, 5) for index in (0, 1)]
    assert sorted(os.listdir(folder)) == sorted(expected)
    ui = with_previews["output"]["ui"]["images"]
    assert [entry["filename"] for entry in ui] == expected
    assert all(entry["subfolder"] == "hn_previews/previewed" and entry["type"] == "output" for entry in ui)
    for name in expected:
        with Image.open(os.path.join(folder, name)) as image:
            assert image.size == (SIZE, SIZE) and image.mode == "RGB"
            assert image.text["hypernetwork"] == "previewed"
            assert image.text["hypernetwork_step"] == name.split("-")[1]


def test_previews_reach_the_node_as_they_arrive(with_previews, output_dir):
    shown = [(value, preview, node) for value, _total, preview, node in with_previews["hook"] if preview is not None]
    assert len(shown) == 8 and all(node == "7" for _, _, node in shown)
    assert [value for value, _, _ in shown] == [0, 0, 2, 2, 4, 4, 5, 5]  # the bar's position when each arrived
    folder = os.path.join(output_dir, "hn_previews", "previewed")
    for (_, (kind, picture, _max_size), _), entry in zip(shown, with_previews["output"]["ui"]["images"]):
        assert kind == "PNG"
        with Image.open(os.path.join(folder, entry["filename"])) as saved:
            assert np.array_equal(np.asarray(picture), np.asarray(saved))


def test_preview_grid_has_a_row_per_prompt_and_a_column_per_step(with_previews, output_dir):
    grid = with_previews["output"]["result"][4]
    gap = 2
    assert tuple(grid.shape) == (1, 2 * SIZE + gap, 4 * SIZE + 3 * gap, 3)
    folder = os.path.join(output_dir, "hn_previews", "previewed")
    for column, step in enumerate(("base", 2, 4, 5)):
        for row in range(2):
            top, left = row * (SIZE + gap), column * (SIZE + gap)
            cell = (grid[0, top:top + SIZE, left:left + SIZE] * 255).round().to(torch.uint8).numpy()
            with Image.open(os.path.join(folder, f"previewed-{step}-{row}.png")) as saved:
                assert np.array_equal(cell, np.asarray(saved))
    # the two prompts draw different pictures, and training changes them
    cells = [grid[0, r * (SIZE + gap):r * (SIZE + gap) + SIZE, c * (SIZE + gap):c * (SIZE + gap) + SIZE]
             for r in range(2) for c in (0, 3)]
    assert (cells[0] - cells[2]).abs().max() > 0.01 and (cells[0] - cells[1]).abs().max() > 0.01


def test_grid_goes_to_save_image(comfy_host, with_previews, output_dir):
    with torch.inference_mode():
        saved = comfy_host.node_class("SaveImage")().save_images(with_previews["output"]["result"][4],
                                                                 filename_prefix="hn_preview_grid")
    (entry,) = saved["ui"]["images"]
    assert os.path.isfile(os.path.join(output_dir, entry["subfolder"], entry["filename"]))


def test_base_and_last_previews_match_ksampler_without_and_with_the_network(comfy_host, with_previews):
    """The base column is exactly what KSampler + VAE Decode draw with the input model; the last
    column what they draw with the trained hypernetwork applied at strength 1."""
    model = with_previews["model"]
    trained_model = with_previews["output"]["result"][0]
    grid = with_previews["output"]["result"][4]
    positive, negative = _prompts(2)[1], _prompts(1, seed=7)[0]
    gap = 2
    for column, drawn_by in ((0, model), (3, trained_model)):
        expected = _ksampler_picture(comfy_host, drawn_by, positive, negative)
        top, left = SIZE + gap, column * (SIZE + gap)
        cell = grid[0, top:top + SIZE, left:left + SIZE]
        assert (cell - expected).abs().max() <= 1.5 / 255, column


def _ksampler_picture(comfy_host, model, positive, negative):
    latent = {"samples": torch.zeros(1, 4, SIZE // 8, SIZE // 8)}
    with torch.inference_mode():
        (samples,) = comfy_host.node_class("KSampler")().sample(
            model, PREVIEW["preview_seed"], PREVIEW["preview_steps"], PREVIEW["preview_cfg"], "euler", "normal",
            positive, negative, latent)
        (images,) = comfy_host.node_class("VAEDecode")().decode(ct.tiny_vae(), samples)
    return images[0].float()


def test_training_with_previews_is_bit_identical_to_training_without(comfy_host, with_previews):
    latents, conditioning = with_previews["data"]
    without = ct.train_node_output(comfy_host, with_previews["model"], latents, conditioning, name="unpreviewed",
                                   **TRAINING)
    previewed, plain = with_previews["output"]["result"], without["result"]
    assert previewed[2]["loss"] == plain[2]["loss"]
    a, b = ct.weights_of(previewed[1]), ct.weights_of(plain[1])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    attached = comfy_host.pack_module("hn_core.training").attached_optimizer_state
    state_a = attached(previewed[1].network).state_dict["state"]
    state_b = attached(plain[1].network).state_dict["state"]
    assert all(torch.equal(state_a[i][key], state_b[i][key]) for i in state_a for key in state_a[i])
    # previews off: an empty IMAGE batch and nothing to show
    assert without["ui"]["images"] == [] and without["result"][4].shape[0] == 0


def test_previews_leave_training_with_gradient_checkpointing_bit_identical(comfy_host):
    model = ct.loader_built("sd1")
    latents, conditioning = ct.dataset(count=2)
    plain = ct.train(comfy_host, model, latents, conditioning, name="checkpointed", gradient_checkpointing=True,
                     **TRAINING)
    previewed = _train_with_previews(comfy_host, model, latents, conditioning, "checkpointed_previewed",
                                     gradient_checkpointing=True)["result"]
    assert previewed[2]["loss"] == plain[2]["loss"]
    a, b = ct.weights_of(previewed[1]), ct.weights_of(plain[1])
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("case, inputs, widgets, message", [
    ("vae-only", {"preview_vae": "vae"}, {}, "preview_positive is not"),
    ("prompt-only", {"preview_positive": "prompt"}, {}, "preview_vae is not"),
    ("wrong-channels", {"preview_vae": "vae16", "preview_positive": "prompt"}, {}, "16-channel latents"),
    ("odd-size", {"preview_vae": "vae", "preview_positive": "prompt"}, {"preview_width": 36}, "preview_width 36"),
    ("wrong-clip", {"preview_vae": "vae", "preview_positive": "wide"}, {}, "1024 wide"),
    ("negatives", {"preview_vae": "vae", "preview_positive": "two", "preview_negative": "three"}, {},
     "3 preview_negative"),
])
def test_unusable_preview_inputs_are_refused_before_anything_is_written(comfy_host, output_dir, hypernetwork_dir,
                                                                        node_previews, case, inputs, widgets,
                                                                        message):
    values = {"vae": [ct.tiny_vae()], "vae16": [_taesd_vae(latent_channels=16)], "prompt": _prompts(1),
              "two": _prompts(2), "three": _prompts(3),
              "wide": [[[torch.zeros(1, 77, 1024), {}]]]}
    name = f"refused_{case.replace('-', '_')}"
    latents, conditioning = ct.dataset(count=2)
    error = comfy_host.pack_module("hn_core.training").TrainingError
    with pytest.raises(error, match=message):
        ct.train_node_output(comfy_host, ct.loader_built("sd1"), latents, conditioning, name=name, steps=2,
                             snapshot_every=1, **{**PREVIEW, **widgets},
                             list_inputs={key: values[value] for key, value in inputs.items()})
    assert not os.path.exists(os.path.join(output_dir, "hn_previews", name))
    assert not os.path.exists(hypernetwork_dir / name)
    assert node_previews == []  # not even the progress bar moved


def test_connected_previews_with_preview_every_0_draw_nothing_and_say_so(comfy_host, output_dir, node_previews,
                                                                         caplog):
    latents, conditioning = ct.dataset(count=2)
    name = "previews_off"
    with caplog.at_level("WARNING"):
        result = ct.train_node_output(comfy_host, ct.loader_built("sd1"), latents, conditioning, name=name, steps=2,
                                      **{**PREVIEW, "preview_every": 0},
                                      list_inputs={"preview_vae": [ct.tiny_vae()], "preview_positive": _prompts(1)})
    assert "preview_every is 0: no previews" in caplog.text
    assert not os.path.exists(os.path.join(output_dir, "hn_previews", name))
    assert [preview for *_, preview, _node in node_previews if preview is not None] == []
    assert result["result"][-1].shape[0] == 0  # the preview_grid output is an empty batch


def _taesd_vae(latent_channels: int):
    """A VAE that ComfyUI's VAE class detects from its weights (TAESD keys) as `latent_channels` wide."""
    import comfy.sd
    from comfy.taesd.taesd import TAESD

    with torch.inference_mode():
        vae = comfy.sd.VAE(sd=TAESD(latent_channels=latent_channels).state_dict())
    assert vae.latent_channels == latent_channels
    return vae


def test_a_diverging_run_stops_naming_the_step_and_keeps_the_good_snapshots(comfy_host, hypernetwork_dir):
    from hn_core import load_hypernetwork

    model = ct.loader_built("sd1")
    latents, conditioning = ct.dataset(count=2)
    diverged = comfy_host.pack_module("hn_core.training").TrainingDiverged
    # A sane rate for 4 steps, then an absurd one: the weights blow up and the loss turns NaN/inf.
    with pytest.raises(diverged) as caught:
        ct.train(comfy_host, model, latents, conditioning, name="diverges", steps=30, snapshot_every=2,
                 learning_rate="1e-3:4, 1e30", activation="relu", seed=2)
    step = caught.value.step
    assert 4 < step <= 30 and f"diverged at step {step}" in str(caught.value)
    folder = hypernetwork_dir / "diverges"
    saved = sorted(int(name[len("diverges-"):-3]) for name in os.listdir(folder) if name.endswith(".pt"))
    assert saved == list(range(2, step, 2))  # every snapshot before the divergence, none after
    for snapshot in saved:
        network = load_hypernetwork(folder / f"diverges-{snapshot}.pt")
        assert network.info.step == snapshot
        assert all(torch.isfinite(v).all() for v in network.state_dict().values())
