"""TrainHypernetwork on the real in-process ComfyUI, with tiny UNets built like a loader builds them."""
from __future__ import annotations

import pytest
import torch

from tests.training import comfy_training as ct


@pytest.fixture(scope="module")
def learned(comfy_host):
    """One longer training run on a learnable dataset, with the input model fingerprinted."""
    model = ct.loader_built("sd1")
    latents, conditioning = ct.dataset()
    before = ct.model_fingerprint(model)
    loss_before = ct.eps_loss(model, latents, conditioning, samples=16)
    outputs = ct.train(comfy_host, model, latents, conditioning, name="learned", steps=100, learning_rate="1e-3",
                       activation="relu", seed=1)
    return {"model": model, "data": (latents, conditioning), "before": before, "loss_before": loss_before,
            "outputs": outputs}


def test_loss_falls_on_a_learnable_dataset(learned):
    trained_model, hypernetwork, loss_map, steps = learned["outputs"]
    loss_after = ct.eps_loss(trained_model, *learned["data"], samples=16)
    assert loss_after < 0.93 * learned["loss_before"], (learned["loss_before"], loss_after)
    losses = loss_map["loss"]
    assert steps == 100 and hypernetwork.network.info.step == 100 and len(losses) == 100
    assert all(isinstance(x, float) for x in losses)
    assert sum(losses[-20:]) < sum(losses[:20])


def test_input_model_is_left_exactly_as_it_was(learned):
    ct.assert_same_fingerprint(learned["before"], ct.model_fingerprint(learned["model"]))


def test_loss_map_draws_in_comfyuis_loss_graph_node(comfy_host, learned):
    node = comfy_host.node_class("LossGraphNode")
    with torch.inference_mode():
        output = node.execute(loss=learned["outputs"][2], filename_prefix="hn_loss")
    assert output.ui is not None


def test_trained_hypernetwork_is_ready_for_inference(learned):
    network = learned["outputs"][1].network
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    assert network.info.name == "learned" and network.dims == (32, 64, 128, 768)


def test_v_prediction_model_trains_against_v(comfy_host):
    from comfy.model_sampling import V_PREDICTION

    model = ct.loader_built("sd2v")
    assert isinstance(model.get_model_object("model_sampling"), V_PREDICTION)
    latents, conditioning = ct.dataset(count=2, context_dim=1024)
    # lr 0: the network stays at its initial weights, so the output MODEL is the model trained through.
    trained, hypernetwork, loss_map, _ = ct.train(comfy_host, model, latents, conditioning, steps=1,
                                                  learning_rate="0", seed=5)
    expected_v, expected_eps = _first_step_losses(trained, latents, conditioning, seed=5)
    assert loss_map["loss"][0] == pytest.approx(expected_v, rel=1e-4)
    assert abs(expected_v - expected_eps) > 0.05 * expected_v  # the two objectives really differ here
    # ... and it trains: a few real steps give finite losses and move the weights.
    _, trained_on, loss_map, _ = ct.train(comfy_host, model, latents, conditioning, steps=3, learning_rate="1e-3",
                                          seed=5)
    assert all(torch.isfinite(torch.tensor(loss_map["loss"])))
    assert any(not torch.equal(a, b) for a, b in zip(ct.weights_of(hypernetwork).values(),
                                                      ct.weights_of(trained_on).values()))


def _first_step_losses(model, latents, conditioning, seed):
    """Step 1's loss recomputed by hand: the same draws (hn_core's per-step seeding), the model's
    output through ComfyUI's sampling path, then MSE against v and against epsilon."""
    from tests.host import models
    from hn_core.training.batch_plan import micro_batches, step_generator

    sigmas = model.get_model_object("model_sampling").sigmas.float()
    ((index,),) = micro_batches(seed, 0, 2, 1, 1)
    generator = step_generator(seed, 0, "noise")
    timestep = torch.randint(0, len(sigmas), (1,), generator=generator)
    noise = torch.randn((4, 8, 8), generator=generator)[None]
    sigma = float(sigmas[timestep])
    clean = model.model.process_latent_in(latents[index]["samples"].clone())
    x = clean + sigma * noise
    denoised = models.unet_forward(model, x, sigma, conditioning[index][0][0].clone())
    scale = (sigma ** 2 + 1) ** 0.5
    v_predicted = (x / (sigma ** 2 + 1) - denoised) * scale / sigma  # inverse of ComfyUI's V_PREDICTION
    v_target = (noise - sigma * clean) / scale
    eps_predicted = (x - denoised) / sigma  # what an epsilon objective would compare
    return ((v_predicted - v_target) ** 2).mean().item(), ((eps_predicted - noise) ** 2).mean().item()


def test_per_image_lists_with_mixed_sizes_and_prompt_lengths(comfy_host):
    # What Load Image and Text Dataset from Folder -> VAE Encode / CLIP Text Encode produce:
    # one LATENT and one CONDITIONING per image; sizes and token counts may differ.
    model = ct.loader_built("sd1")
    generator = torch.Generator().manual_seed(3)
    with torch.inference_mode():
        latents = [{"samples": torch.randn(1, 4, 8, 8, generator=generator)},
                   {"samples": torch.randn(1, 4, 16, 8, generator=generator)},
                   {"samples": torch.randn(1, 4, 8, 8, generator=generator)}]
        conditioning = [[[torch.randn(1, 77, 768, generator=generator), {}]],
                        [[torch.randn(1, 154, 768, generator=generator), {}]],
                        [[torch.randn(1, 77, 768, generator=generator), {}]]]
    _, hypernetwork, loss_map, steps = ct.train(comfy_host, model, latents, conditioning, steps=3, batch_size=3,
                                                dims="64, 768", learning_rate="1e-3")
    assert steps == 3 and len(loss_map["loss"]) == 3 and hypernetwork.network.dims == (64, 768)


def test_gradient_checkpointing_changes_memory_not_results(comfy_host):
    model = ct.loader_built("sd1")
    latents, conditioning = ct.dataset(count=2)
    before = ct.model_fingerprint(model)
    options = dict(steps=2, dims="32, 64, 768", learning_rate="1e-3", layer_structure="1, 2, 2, 1",
                   dropout="hidden layers", seed=9)
    _, plain, plain_losses, _ = ct.train(comfy_host, model, latents, conditioning, **options)
    _, checkpointed, ckpt_losses, _ = ct.train(comfy_host, model, latents, conditioning,
                                               gradient_checkpointing=True, **options)
    assert plain_losses["loss"] == pytest.approx(ckpt_losses["loss"], rel=1e-5)
    for key, value in ct.weights_of(plain).items():
        torch.testing.assert_close(ct.weights_of(checkpointed)[key], value, rtol=1e-4, atol=1e-6)
    ct.assert_same_fingerprint(before, ct.model_fingerprint(model))


def test_continuing_leaves_the_input_hypernetwork_alone(comfy_host):
    model = ct.loader_built("sd1")
    latents, conditioning = ct.dataset(count=2)
    _, first, _, _ = ct.train(comfy_host, model, latents, conditioning, steps=2, dims="64", learning_rate="1e-3")
    snapshot = ct.weights_of(first)
    _, second, _, steps = ct.train(comfy_host, model, latents, conditioning, hypernetwork=first, steps=4,
                                   learning_rate="1e-3")
    assert steps == 4 and first.network.info.step == 2
    assert all(torch.equal(v, ct.weights_of(first)[k]) for k, v in snapshot.items())
    assert any(not torch.equal(v, ct.weights_of(second)[k]) for k, v in snapshot.items())


def test_reduced_precision_training_leaves_the_input_model_rendering_as_before(comfy_host):
    import gc

    from tests.host import models

    model = ct.loader_built("sd1")
    latents, conditioning = ct.dataset(count=2)
    x, context = models.seeded_inputs(model, size=8)
    before = models.unet_forward(model, x, 2.0, context)
    _, _, loss_map, _ = ct.train(comfy_host, model, latents, conditioning, steps=2, dims="64", learning_rate="1e-3",
                                 training_dtype="fp16", gradient_clipping="norm", clip_value="1.0")
    gc.collect()  # ComfyUI drops the training clone; the input model must not notice any of it
    assert all(torch.isfinite(torch.tensor(loss_map["loss"])))
    assert torch.equal(models.unet_forward(model, x, 2.0, context), before)


def test_sdxl_layout_trains_with_its_pooled_and_size_conditioning(comfy_host):
    model = ct.loader_built("sdxl")
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        latents = [{"samples": torch.randn(2, 4, 8, 8, generator=generator)}]
        conditioning = [[[torch.randn(1, 77, 2048, generator=generator),
                          {"pooled_output": torch.randn(1, 1280, generator=generator)}]]]
    _, hypernetwork, loss_map, steps = ct.train(comfy_host, model, latents, conditioning, steps=2,
                                                learning_rate="1e-3")
    assert steps == 2 and hypernetwork.network.dims == (64, 128, 256, 2048)
    assert all(torch.isfinite(torch.tensor(loss_map["loss"])))


def test_text_context_runs_through_the_network_once_per_model_call(comfy_host, monkeypatch):
    # Every cross-attention layer sees the same context: its MLPs run once, and every layer reuses it.
    # (Counted where the patch computes k', v', whether through the MLPs or their folded product.)
    patch_class = comfy_host.pack_module("hn_core.training.training_patch").TrainingPatch
    original = patch_class._transform
    widths = []

    def counting(self, k, v):
        widths.append(k.shape[-1])
        return original(self, k, v)

    monkeypatch.setattr(patch_class, "_transform", counting)
    model = ct.loader_built("sd1")
    latents, conditioning = ct.dataset(count=2)
    ct.train(comfy_host, model, latents, conditioning, steps=2, learning_rate="1e-3")
    assert widths.count(768) == 2  # one model call per step
    assert len([w for w in widths if w != 768]) == 2 * 10  # self-attention: every layer, every step


def test_training_on_a_model_that_already_rendered_with_a_hypernetwork(comfy_host):
    # Sample with a hypernetwork applied, then train another on top of that same MODEL and prompt.
    # The applied network caches its output for the text context; the cached tensors were made
    # under inference mode and must never reach autograd. ComfyUI >= 0.33's clone() shares patch
    # objects (and so that cache) between the rendered model and the training clone.
    from tests.host import models

    model = ct.loader_built("sd1")
    latents, conditioning = ct.dataset(count=2)
    _, styled, _, _ = ct.train(comfy_host, model, latents, conditioning, steps=1, learning_rate="1e-3",
                               activation="relu", layer_norm=True)  # non-linear: the exact (patch) path
    with torch.inference_mode():
        (applied,) = comfy_host.node_class("ApplyHypernetwork")().apply(model, styled, 1.0)
    x, _ = models.seeded_inputs(applied, size=8)
    rendered = models.unet_forward(applied, x, 2.0, conditioning[0][0][0])
    patches = {kind: list(p) for kind, p in applied.model_options["transformer_options"]["patches"].items()}
    _, _, loss_map, steps = ct.train(comfy_host, applied, latents, conditioning, steps=2, learning_rate="1e-3")
    assert steps == 2 and all(torch.isfinite(torch.tensor(loss_map["loss"])))
    # The input model keeps its own patches (the same objects) and renders as before.
    assert applied.model_options["transformer_options"]["patches"] == patches
    assert torch.equal(models.unet_forward(applied, x, 2.0, conditioning[0][0][0]), rendered)
