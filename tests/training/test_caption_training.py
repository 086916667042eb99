"""Caption mode of Train Hypernetwork on the real host: a CLIP and captions instead of CONDITIONING,
prompts built per image and step (template line, tag dropout, tag shuffle) and encoded by ComfyUI's
CLIP. Runs on every host (no 0.33-only nodes involved)."""
from __future__ import annotations

import pytest
import torch

from tests.training import comfy_training as ct
from tests.training.tiny_clip import tiny_clip

CAPTIONS = ["red, square, small", "blue, circle, large, outline", "green, triangle"]


class RecordingClip:
    """The real CLIP, recording every text it is asked to tokenize."""

    def __init__(self, clip):
        self.clip, self.texts = clip, []

    def tokenize(self, text, **options):
        self.texts.append(text)
        return self.clip.tokenize(text, **options)

    def encode_from_tokens_scheduled(self, tokens, **options):
        return self.clip.encode_from_tokens_scheduled(tokens, **options)


def _latents(count=3):
    latents, _ = ct.dataset(count=count)
    return latents


def _train(host, clip, captions, hypernetwork=None, **widgets):
    cls = host.node_class("TrainHypernetwork")
    values = {**ct.widget_defaults(cls), "steps": 4, "dims": "768", "learning_rate": "1e-3", "name": "capt",
              **widgets}
    captions_in = {"captions": captions} if captions is not None else {}
    if hypernetwork is not None:
        captions_in["hypernetwork"] = [hypernetwork]
    with torch.inference_mode():
        out = cls().train(model=[ct.loader_built("sd1")], latents=_latents(), clip=[clip], **captions_in,
                          **{k: [v] for k, v in values.items()})
    return (out["result"] if isinstance(out, dict) else out)[:4]  # model, hypernetwork, loss map, steps


def test_prompts_are_built_per_image_and_step_and_encoded_by_the_clip(comfy_host, tmp_path):
    from hn_core.training.batch_plan import bucketed_micro_batches
    from hn_core.training.captions import CaptionPlan

    template = tmp_path / "mine.txt"
    template.write_text("a picture of [filewords], [name] style\n\n[name]: [filewords]\n", encoding="utf-8")
    clip = RecordingClip(tiny_clip())
    options = dict(caption_template_file=str(template), shuffle_tags=True, tag_dropout=0.3, seed=21,
                   batch_size=2, gradient_accumulation=2)
    _, trained, losses, steps = _train(comfy_host, clip, CAPTIONS, **options)
    assert steps == 4 and len(losses["loss"]) == 4

    plan = CaptionPlan(template=("a picture of [filewords], capt style", "capt: [filewords]"), name="capt",
                       shuffle_tags=True, tag_dropout=0.3)
    keys = [(4, 8, 8)] * 3
    expected = {plan.prompt(CAPTIONS[item], 21, item, step) for step in range(4)
                for batch in bucketed_micro_batches(21, step, keys, 2, 2) for item in batch}
    assert set(clip.texts) == expected
    assert len(clip.texts) == len(expected)  # a prompt that comes back is not encoded again
    assert len(expected) > 4  # the prompts did vary from step to step

    again = RecordingClip(tiny_clip())
    _, retrained, _, _ = _train(comfy_host, again, CAPTIONS, **options)
    assert again.texts == clip.texts
    for key, value in ct.weights_of(trained).items():
        assert torch.equal(value, ct.weights_of(retrained)[key]), key


def test_resuming_in_caption_mode_draws_the_prompts_a_straight_run_draws(comfy_host):
    options = dict(caption_template="style_filewords.txt", shuffle_tags=True, tag_dropout=0.2, seed=6)
    straight_clip = RecordingClip(tiny_clip())
    _, straight, _, _ = _train(comfy_host, straight_clip, CAPTIONS, steps=4, **options)
    first_clip, second_clip = RecordingClip(tiny_clip()), RecordingClip(tiny_clip())
    _, half, _, _ = _train(comfy_host, first_clip, CAPTIONS, steps=2, **options)
    _, resumed, _, steps = _train(comfy_host, second_clip, CAPTIONS, hypernetwork=half, steps=4, **options)
    assert steps == 4
    assert set(first_clip.texts) | set(second_clip.texts) == set(straight_clip.texts)
    for key, value in ct.weights_of(straight).items():
        torch.testing.assert_close(ct.weights_of(resumed)[key], value, rtol=1e-5, atol=1e-7)


def test_caption_mode_without_template_trains_like_the_encoded_captions(comfy_host):
    import nodes

    clip = tiny_clip()
    widgets = dict(seed=4, batch_size=2)
    _, by_caption, caption_losses, _ = _train(comfy_host, clip, CAPTIONS, **widgets)
    with torch.inference_mode():
        conditioning = [nodes.CLIPTextEncode().encode(clip, text)[0] for text in CAPTIONS]
    _, by_conditioning, conditioning_losses, _ = ct.train(
        comfy_host, ct.loader_built("sd1"), _latents(), conditioning, steps=4, dims="768", learning_rate="1e-3",
        name="capt", **widgets)
    assert caption_losses["loss"] == pytest.approx(conditioning_losses["loss"], rel=1e-5)
    for key, value in ct.weights_of(by_caption).items():
        torch.testing.assert_close(value, ct.weights_of(by_conditioning)[key], rtol=1e-5, atol=1e-7)


def test_the_template_list_offers_the_packs_templates_and_the_model_folder(comfy_host):
    import folder_paths

    folder = comfy_host.model_dir("hypernetwork_templates")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "user_style.txt").write_text("[filewords] by [name]\n", encoding="utf-8")
    choices = comfy_host.node_class("TrainHypernetwork").INPUT_TYPES()["optional"]["caption_template"][0]
    assert {"style.txt", "subject_filewords.txt", "user_style.txt"} <= set(choices)
    assert str(folder) in folder_paths.get_folder_paths("hypernetwork_templates")
    clip = RecordingClip(tiny_clip())
    _train(comfy_host, clip, ["one caption for all"], caption_template="user_style.txt", steps=2)
    assert set(clip.texts) == {"one caption for all by capt"}


@pytest.mark.parametrize("change, message", [
    (dict(caption_template_file="/no/such/template.txt"), "no template file at /no/such/template.txt"),
    (dict(caption_template="missing.txt"), "not in the hypernetwork_templates folders"),
    (dict(captions=["a", "b"]), "got 2 captions for 3 images"),
])
def test_bad_caption_inputs_are_named(comfy_host, change, message):
    TrainingError = comfy_host.pack_module("hn_core.training").TrainingError
    captions = change.pop("captions", CAPTIONS)
    with pytest.raises(TrainingError, match=message):
        _train(comfy_host, tiny_clip(), captions, **change)


def test_captions_need_a_clip_and_exclude_a_conditioning(comfy_host):
    TrainingError = comfy_host.pack_module("hn_core.training").TrainingError
    cls = comfy_host.node_class("TrainHypernetwork")
    latents, conditioning = ct.dataset(count=3)
    values = {k: [v] for k, v in {**ct.widget_defaults(cls), "steps": 2}.items()}
    with torch.inference_mode(), pytest.raises(TrainingError, match="no CLIP"):
        cls().train(model=[ct.loader_built("sd1")], latents=latents, captions=CAPTIONS, **values)
    with torch.inference_mode(), pytest.raises(TrainingError, match="connect one of them"):
        cls().train(model=[ct.loader_built("sd1")], latents=latents, conditioning=conditioning, clip=[tiny_clip()],
                    captions=CAPTIONS, **values)
    with torch.inference_mode(), pytest.raises(TrainingError, match="no prompts"):
        cls().train(model=[ct.loader_built("sd1")], latents=latents, **values)
