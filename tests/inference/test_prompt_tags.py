"""ApplyPromptHypernetworks: A1111 <hypernet:…> / <lora:…> prompt tags against the same nodes wired by
hand (LoadHypernetwork -> HypernetworkStrength -> ApplyHypernetwork, ComfyUI's LoraLoader /
LoraLoaderModelOnly), all through ComfyUI's registry, with real files in the host's model folders.
"""
from __future__ import annotations

import logging
import re

import pytest
import torch

from tests.inference import lora_folding as lf
from tests.inference import support as s
from tests.reference.a1111_reference import make_raw_a1111_dict
from tests.training.tiny_clip import tiny_clip

NODE = "ApplyPromptHypernetworks"
SIGMA = 1.5
TINY_DIMS = (32, 64, 128, 768)
NETWORKS = {
    "pt_linear": dict(activation="linear", std=0.02, seed=11),  # folded on the speed path
    "pt_relu": dict(activation="relu", is_layer_norm=True, std=0.05, seed=12),  # patched
    "pt_tanh": dict(activation="tanh", layer_structure=(1, 1.5, 1), std=0.08, seed=13),  # patched
}


@pytest.fixture(scope="module")
def files(comfy_host, hypernetwork_dir):
    for stem, options in NETWORKS.items():
        s.write_raw(hypernetwork_dir, f"{stem}.pt", make_raw_a1111_dict(TINY_DIMS, **options))
    (hypernetwork_dir / "pt_sub" / "deeper").mkdir(parents=True, exist_ok=True)
    s.write_raw(hypernetwork_dir, "pt_sub/deeper/pt_nested.pt", make_raw_a1111_dict(TINY_DIMS, activation="relu",
                                                                                   std=0.05, seed=14))
    return hypernetwork_dir


def tags(comfy_host, model, text, **inputs):
    """The node's five outputs as a dict."""
    out = s.run_node(comfy_host, NODE, model=model, text=text, **inputs)
    return dict(zip(("model", "clip", "text", "report", "negative_text"), out))


def hand_chain(comfy_host, model, steps, speed_path=True):
    """LoadHypernetwork -> ApplyHypernetwork for each (file, strength), in order."""
    for filename, strength in steps:
        model = s.apply_node(comfy_host, model, s.load_node(comfy_host, filename)[0], strength, speed_path)
    return model


def assert_same_output(a, b, x, context, sigma=SIGMA):
    assert torch.equal(s.eps(a, x, sigma, context), s.eps(b, x, sigma, context))


# --- the node as ComfyUI registers it ----------------------------------------------------------------


def test_registered_with_the_documented_sockets_and_tooltips(comfy_host):
    cls = comfy_host.node_class(NODE)
    inputs = cls.INPUT_TYPES()
    assert list(inputs["required"]) == ["model", "text"]
    assert inputs["required"]["text"][0] == "STRING" and inputs["required"]["text"][1]["multiline"] is True
    assert list(inputs["optional"]) == ["clip", "speed_path", "negative_text"]
    assert inputs["optional"]["speed_path"][1]["default"] is True
    assert cls.RETURN_TYPES == ("MODEL", "CLIP", "STRING", "STRING", "STRING")
    for spec in (*inputs["required"].values(), *inputs["optional"].values()):
        assert spec[1]["tooltip"]
    assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES) and all(cls.OUTPUT_TOOLTIPS)
    assert comfy_host.nodes.NODE_DISPLAY_NAME_MAPPINGS[NODE] == "Apply Hypernetworks from Prompt (A1111 tags)"


# --- hypernet tags equal the nodes wired by hand ----------------------------------------------------


@pytest.mark.parametrize("stem", sorted(NETWORKS))
@pytest.mark.parametrize("multiplier", [None, 0.7, -0.4])
@pytest.mark.parametrize("speed_path", [True, False])
def test_one_tag_is_bit_identical_to_load_then_apply(comfy_host, files, tiny_model, stem, multiplier, speed_path):
    x, context = s.models.seeded_inputs(tiny_model, batch=2, seed=51)
    tag = f"<hypernet:{stem}>" if multiplier is None else f"<hypernet:{stem}:{multiplier}>"
    out = tags(comfy_host, tiny_model, f"a castle, {tag} at dawn", speed_path=speed_path)
    # No multiplier means 1.0, as in A1111.
    by_hand = hand_chain(comfy_host, tiny_model, [(f"{stem}.pt", 1.0 if multiplier is None else multiplier)],
                         speed_path)
    assert s.is_folded(out["model"]) == s.is_folded(by_hand) == (speed_path and stem == "pt_linear")
    assert_same_output(out["model"], by_hand, x, context)
    assert s.rel_err(s.eps(out["model"], x, SIGMA, context), s.plain_eps(tiny_model, x, SIGMA, context)) > 1e-4
    assert out["text"] == "a castle,  at dawn" and out["clip"] is None
    assert f"{stem}.pt" in out["report"] and str(files / f"{stem}.pt") in out["report"]
    assert not tiny_model.object_patches and "patches" not in tiny_model.model_options["transformer_options"]


def test_tags_apply_in_prompt_order_like_a_chain(comfy_host, files, tiny_model):
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=52)
    forward = tags(comfy_host, tiny_model, "<hypernet:pt_relu:1.5> x <hypernet:pt_tanh:1.2>")["model"]
    backward = tags(comfy_host, tiny_model, "<hypernet:pt_tanh:1.2> x <hypernet:pt_relu:1.5>")["model"]
    assert_same_output(forward, hand_chain(comfy_host, tiny_model, [("pt_relu.pt", 1.5), ("pt_tanh.pt", 1.2)]),
                       x, context)
    assert_same_output(backward, hand_chain(comfy_host, tiny_model, [("pt_tanh.pt", 1.2), ("pt_relu.pt", 1.5)]),
                       x, context)
    # Two non-linear networks do not commute: the order is really kept.
    assert s.rel_err(s.eps(forward, x, SIGMA, context), s.eps(backward, x, SIGMA, context)) > 1e-5


def test_folded_then_patched_keeps_the_order(comfy_host, files, tiny_model):
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=53)
    for order in (["pt_linear", "pt_relu"], ["pt_relu", "pt_linear"]):
        text = " ".join(f"<hypernet:{stem}:0.9>" for stem in order)
        by_hand = hand_chain(comfy_host, tiny_model, [(f"{stem}.pt", 0.9) for stem in order])
        assert_same_output(tags(comfy_host, tiny_model, text)["model"], by_hand, x, context)


def test_the_same_name_twice_applies_twice(comfy_host, files, tiny_model):
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=54)
    out = tags(comfy_host, tiny_model, "<hypernet:pt_tanh:0.5> <hypernet:pt_tanh:0.3>")
    twice = hand_chain(comfy_host, tiny_model, [("pt_tanh.pt", 0.5), ("pt_tanh.pt", 0.3)])
    assert_same_output(out["model"], twice, x, context)
    once = hand_chain(comfy_host, tiny_model, [("pt_tanh.pt", 0.3)])  # what A1111 would do (last multiplier)
    assert s.rel_err(s.eps(out["model"], x, SIGMA, context), s.eps(once, x, SIGMA, context)) > 1e-5
    assert out["report"].count("hypernetwork pt_tanh.pt, strength") == 2


def test_a_file_in_a_subfolder_is_found_by_its_stem_and_by_its_path(comfy_host, files, tiny_model):
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=55)
    by_hand = hand_chain(comfy_host, tiny_model, [("pt_sub/deeper/pt_nested.pt", 0.8)])
    for name in ("pt_nested", "pt_sub/deeper/pt_nested", "pt_sub/deeper/pt_nested.pt"):
        assert_same_output(tags(comfy_host, tiny_model, f"<hypernet:{name}:0.8>")["model"], by_hand, x, context)


def test_named_arguments_equal_the_strength_node(comfy_host, files, tiny_model):
    sampling = tiny_model.get_model_object("model_sampling")
    rows = torch.tensor([float(sampling.percent_to_sigma(p)) for p in (0.05, 0.3, 0.6, 0.9)])
    x, context = s.models.seeded_inputs(tiny_model, batch=len(rows), seed=56)
    text = "<hypernet:pt_relu:0.8:start=0.2:end=0.7:self=0.3:cross=1.5:mid=0:input4=0.25:output3=2>"
    out = tags(comfy_host, tiny_model, text)["model"]
    profiled = s.strength_node(comfy_host, s.load_node(comfy_host, "pt_relu.pt")[0], self_attention=0.3,
                               cross_attention=1.5, middle_block=0.0, start_percent=0.2, end_percent=0.7,
                               block_weights="input 4: 0.25, output 3: 2")
    by_hand = s.apply_node(comfy_host, tiny_model, profiled, 0.8)
    got, want = s.eps_rows(out, x, rows, context), s.eps_rows(by_hand, x, rows, context)
    assert torch.equal(got, want)
    plain = s.eps_rows(tiny_model, x, rows, context)
    assert torch.equal(got[0], plain[0]) and torch.equal(got[3], plain[3])  # outside start..end
    assert s.rel_err(got[1], plain[1]) > 1e-5  # inside


def test_a_linear_network_with_block_weights_still_folds_like_the_hand_chain(comfy_host, files, tiny_model):
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=57)
    out = tags(comfy_host, tiny_model, "<hypernet:pt_linear:1.1:attn1=0.5:output=2>")["model"]
    profiled = s.strength_node(comfy_host, s.load_node(comfy_host, "pt_linear.pt")[0], self_attention=0.5,
                               output_blocks=2.0)
    by_hand = s.apply_node(comfy_host, tiny_model, profiled, 1.1)
    assert s.is_folded(out) and s.is_folded(by_hand)
    assert_same_output(out, by_hand, x, context)


# --- the text left, other kinds, the negative text -------------------------------------------------


PROMPTS = [
    "1girl, <hypernet:pt_linear:1.1> <extrasupernet:master:12:13:14> <hypernet:pt_relu>",
    "<lyco:thing:1> (masterpiece:1.2), <hypernet:pt_tanh:0.5>\nsecond line <x:y>",
    "no tags <notatag> <hypernet:> < hypernet:pt_linear:1>",
]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_the_text_left_is_a1111s_and_other_kinds_are_reported(comfy_host, files, tiny_model, prompt, caplog):
    with caplog.at_level(logging.WARNING):
        out = tags(comfy_host, tiny_model, prompt)
    assert out["text"] == re.sub(r"<(\w+):([^>]+)>", "", prompt)
    for match in re.finditer(r"<(\w+):([^>]+)>", prompt):
        assert match.group(0) in out["report"]
        if match.group(1) != "hypernet":
            assert "not applied" in out["report"]
            assert any(match.group(0) in record.getMessage() for record in caplog.records)


def test_negative_text_tags_are_stripped_and_listed_but_never_applied(comfy_host, files, tiny_model):
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=58)
    negative = "blurry, <hypernet:pt_relu:1> <lora:whatever:1>, lowres"
    out = tags(comfy_host, tiny_model, "<hypernet:pt_tanh:0.6>", negative_text=negative)
    assert out["negative_text"] == "blurry,  , lowres"
    assert "<hypernet:pt_relu:1>" in out["report"] and "<lora:whatever:1>" in out["report"]
    assert_same_output(out["model"], hand_chain(comfy_host, tiny_model, [("pt_tanh.pt", 0.6)]), x, context)
    plain = tags(comfy_host, tiny_model, "no tags", negative_text=negative)
    assert plain["model"] is tiny_model  # nothing applied: the input itself, untouched


# --- refusals --------------------------------------------------------------------------------------


def _refusal(comfy_host, model, text) -> str:
    with pytest.raises(ValueError) as caught:
        tags(comfy_host, model, text)
    return str(caught.value)


def test_an_unknown_name_is_an_error_naming_the_tag_and_the_closest_names(comfy_host, files, tiny_model):
    message = _refusal(comfy_host, tiny_model, "ok <hypernet:pt_rleu:1> <hypernet:pt_tanh>")
    assert message.startswith("<hypernet:pt_rleu:1>:") and "pt_relu" in message and "closest" in message


def test_a_name_matching_two_files_is_refused_until_written_as_listed(comfy_host, files, tiny_model):
    raw = make_raw_a1111_dict(TINY_DIMS, activation="relu", std=0.05, seed=15)
    s.write_raw(files, "pt_twin.pt", raw)
    (files / "pt_twins").mkdir(exist_ok=True)
    s.write_raw(files, "pt_twins/pt_twin.pt", make_raw_a1111_dict(TINY_DIMS, activation="relu", std=0.05, seed=16))
    message = _refusal(comfy_host, tiny_model, "<hypernet:pt_twin:0.5>")
    assert message.startswith("<hypernet:pt_twin:0.5>:") and "pt_twin.pt" in message and "pt_twins/pt_twin.pt" in message
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=59)
    for name in ("pt_twins/pt_twin", "pt_twins/pt_twin.pt"):
        assert_same_output(tags(comfy_host, tiny_model, f"<hypernet:{name}:0.5>")["model"],
                           hand_chain(comfy_host, tiny_model, [("pt_twins/pt_twin.pt", 0.5)]), x, context)


def test_a_stem_in_two_formats_is_refused(comfy_host, files, tiny_model):
    from hn_core import load_hypernetwork, save_hypernetwork

    s.write_raw(files, "pt_both.pt", make_raw_a1111_dict(TINY_DIMS, activation="relu", std=0.05, seed=17))
    save_hypernetwork(load_hypernetwork(str(files / "pt_both.pt")), files / "pt_both.safetensors")
    message = _refusal(comfy_host, tiny_model, "<hypernet:pt_both>")
    assert message.startswith("<hypernet:pt_both>:") and "pt_both.safetensors" in message


@pytest.mark.parametrize("text, says", [
    ("<hypernet:pt_relu:strong>", "not a number"),
    ("<hypernet::1>", "name is empty"),
    ("<hypernet:pt_relu:1:bogus=2>", "unknown argument 'bogus'"),
    ("<lora:nothing_here_pt:1>", "no file named 'nothing_here_pt' in the 'loras' model folders"),
])
def test_bad_tags_are_refused_before_anything_is_applied(comfy_host, files, tiny_model, text, says):
    message = _refusal(comfy_host, tiny_model, f"<hypernet:pt_tanh> {text}")
    assert message.startswith(text + ":") and says in message, message


# --- lora tags equal ComfyUI's LoraLoader -----------------------------------------------------------


@pytest.fixture(scope="module")
def lora_file(comfy_host):
    """A LoRA on the tiny UNet's to_k / to_v and the tiny CLIP's attention projections."""
    import comfy.lora
    import safetensors.torch

    loras = comfy_host.model_dir("loras")
    name = lf.write_lora(loras, s.models.tiny_sd1(), name="pt_lora.safetensors", seed=5, scale=0.1)
    state = safetensors.torch.load_file(str(loras / name))
    clip = tiny_clip()
    weights = clip.cond_stage_model.state_dict()
    gen = torch.Generator().manual_seed(6)
    clip_keys = {k: v for k, v in comfy.lora.model_lora_keys_clip(clip.cond_stage_model, {}).items()
                 if isinstance(k, str) and k.startswith("lora_te_") and k.endswith(("_k_proj", "_v_proj", "_q_proj"))}
    assert clip_keys
    for lora_key, model_key in clip_keys.items():
        out_features, in_features = weights[model_key].shape
        state[f"{lora_key}.lora_down.weight"] = torch.randn(4, in_features, generator=gen) * 0.3
        state[f"{lora_key}.lora_up.weight"] = torch.randn(out_features, 4, generator=gen) * 0.3
        state[f"{lora_key}.alpha"] = torch.tensor(4.0)
    safetensors.torch.save_file(state, str(loras / name))
    return "pt_lora"


def _encode(clip, text="a photo of a castle"):
    with torch.inference_mode():
        return clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)


def test_a_lora_tag_equals_loraloader_first_number_text_encoder(comfy_host, lora_file, tiny_model):
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=60)
    clip = tiny_clip()
    out = tags(comfy_host, tiny_model, "a castle <lora:pt_lora:0.5:0.8>", clip=clip)
    # A1111: the first number is the text-encoder multiplier, the second the UNet's.
    model, by_hand_clip = s.run_node(comfy_host, "LoraLoader", model=tiny_model, clip=clip,
                                     lora_name=f"{lora_file}.safetensors", strength_model=0.8, strength_clip=0.5)
    assert_same_output(out["model"], model, x, context)
    ours, theirs, plain = _encode(out["clip"]), _encode(by_hand_clip), _encode(clip)
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
    assert s.rel_err(ours[0], plain[0]) > 1e-4  # the text-encoder part really acts
    swapped = s.run_node(comfy_host, "LoraLoader", model=tiny_model, clip=clip, lora_name=f"{lora_file}.safetensors",
                         strength_model=0.5, strength_clip=0.8)
    assert s.rel_err(s.eps(out["model"], x, SIGMA, context), s.eps(swapped[0], x, SIGMA, context)) > 1e-6
    assert out["text"] == "a castle " and "UNet 0.8" in out["report"] and "text encoder 0.5" in out["report"]


def test_a_lora_tag_without_clip_equals_loraloader_model_only(comfy_host, lora_file, tiny_model):
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=61)
    for text, unet in (("<lora:pt_lora:0.6>", 0.6), ("<lora:pt_lora:te=0.2:unet=1.3>", 1.3), ("<lora:pt_lora>", 1.0)):
        out = tags(comfy_host, tiny_model, text)
        assert out["clip"] is None and "no CLIP connected" in out["report"]
        assert_same_output(out["model"], lf.with_lora(comfy_host, tiny_model, f"{lora_file}.safetensors", unet),
                           x, context)


def test_lora_and_hypernet_tags_chain_in_prompt_order(comfy_host, files, lora_file, tiny_model):
    x, context = s.models.seeded_inputs(tiny_model, batch=1, seed=62)
    lora = f"{lora_file}.safetensors"
    lora_first = tags(comfy_host, tiny_model, "<lora:pt_lora:1> <hypernet:pt_linear:0.9>")["model"]
    by_hand = s.apply_node(comfy_host, lf.with_lora(comfy_host, tiny_model, lora, 1.0),
                           s.load_node(comfy_host, "pt_linear.pt")[0], 0.9)
    assert s.is_folded(lora_first)
    assert_same_output(lora_first, by_hand, x, context)
    hn_first = tags(comfy_host, tiny_model, "<hypernet:pt_relu:0.9> <lora:pt_lora:1>")["model"]
    assert_same_output(hn_first, lf.with_lora(comfy_host, hand_chain(comfy_host, tiny_model, [("pt_relu.pt", 0.9)]),
                                              lora, 1.0), x, context)


def test_is_changed_follows_the_files_the_tags_name(comfy_host, files):
    cls = comfy_host.node_class(NODE)
    s.write_raw(files, "pt_changing.pt", make_raw_a1111_dict(TINY_DIMS, activation="relu", seed=18))
    before = cls.IS_CHANGED(text="<hypernet:pt_changing:1> <lyco:x:1>")
    assert before == cls.IS_CHANGED(text="<hypernet:pt_changing:1> <lyco:x:1>")
    s.write_raw(files, "pt_changing.pt", make_raw_a1111_dict(TINY_DIMS, activation="relu", seed=19))
    s.file_mtime_bump(files / "pt_changing.pt")
    assert cls.IS_CHANGED(text="<hypernet:pt_changing:1> <lyco:x:1>") != before
    unknown = cls.IS_CHANGED(text="<hypernet:pt_no_such_file:1>")
    assert unknown != unknown  # NaN: always re-run, so the node itself reports the error
