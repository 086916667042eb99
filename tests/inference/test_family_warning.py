"""Issue 9: a hypernetwork made for another model family warns, naming both families; A1111's
behaviour (patch every layer whose width is one of the file's dims) stays.

Real SD1.5 / SDXL UNet shapes from the host fixtures; no forward pass is needed to see what is patched.
"""
from __future__ import annotations

import logging

import pytest

from tests.inference import support as s
from tests.reference.a1111_reference import make_raw_a1111_dict

SD1_DIMS = (320, 640, 768, 1280)
SD2_DIMS = (320, 640, 1024, 1280)


@pytest.fixture
def node_messages(comfy_host, monkeypatch):
    """What Apply Hypernetwork shows on its node in the UI: (node id, text) pairs."""
    shown = []
    apply_module = comfy_host.pack_module("hn_comfy.apply.apply_network")
    monkeypatch.setattr(apply_module, "show_on_node", lambda node_id, text: shown.append((node_id, text)))
    return shown


def _apply(comfy_host, model, hypernetwork, speed_path):
    (patched,) = s.run_node(comfy_host, "ApplyHypernetwork", model=model, hypernetwork=hypernetwork,
                            strength=1.0, speed_path=speed_path, unique_id="12")
    return patched


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _folded_attentions(patched) -> set[str]:
    """'attn1' / 'attn2' of every projection the speed path replaced."""
    return {key.rsplit(".", 2)[-2] for key in patched.object_patches if key.endswith((".to_k", ".to_v"))}


def test_sd1_file_on_sdxl_warns_and_still_patches_self_attention(comfy_host, hypernetwork_dir, sdxl_model,
                                                                  caplog, node_messages):
    expected = ("hypernetwork 'sd1_on_sdxl' was made for SD1.x (context 768); the model is SDXL (context 2048): "
                "only its self-attention widths 640, 1280 are patched; dims 320, 768 unused")
    linear = s.load_raw(comfy_host, hypernetwork_dir, "sd1_on_sdxl.pt",
                        make_raw_a1111_dict(dims=SD1_DIMS, std=0.01, name="sd1_on_sdxl", seed=31))
    with caplog.at_level(logging.WARNING):
        patched = _apply(comfy_host, sdxl_model, linear, speed_path=True)
    assert [m for m in _warnings(caplog) if expected in m], _warnings(caplog)
    assert node_messages == [("12", "Warning: " + expected)]
    # Patch by width, as A1111: the 640/1280 self-attention projections are folded, cross-attention is not.
    assert _folded_attentions(patched) == {"attn1"}

    relu = s.load_raw(comfy_host, hypernetwork_dir, "sd1_on_sdxl_relu.pt",
                      make_raw_a1111_dict(dims=SD1_DIMS, activation="relu", name="sd1_on_sdxl", seed=32))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        patched = _apply(comfy_host, sdxl_model, relu, speed_path=False)
    assert [m for m in _warnings(caplog) if expected in m], _warnings(caplog)
    patches = patched.model_options["transformer_options"]["patches"]
    assert patches.get("attn1_patch") and patches.get("attn2_patch")  # the exact path, both hooks as before


def test_sd2_file_on_sd1_warns(comfy_host, hypernetwork_dir, sd15_model, caplog, node_messages):
    hypernetwork = s.load_raw(comfy_host, hypernetwork_dir, "sd2_on_sd1.pt",
                              make_raw_a1111_dict(dims=SD2_DIMS, std=0.01, name="sd2_on_sd1", seed=33))
    expected = ("hypernetwork 'sd2_on_sd1' was made for SD2.x (context 1024); the model is SD1.x (context 768): "
                "only its self-attention widths 320, 640, 1280 are patched; dim 1024 unused")
    for speed_path in (True, False):
        caplog.clear()
        node_messages.clear()
        with caplog.at_level(logging.WARNING):
            _apply(comfy_host, sd15_model, hypernetwork, speed_path)
        assert [m for m in _warnings(caplog) if expected in m], _warnings(caplog)
        assert node_messages == [("12", "Warning: " + expected)]


def test_a_file_of_the_models_family_warns_nothing(comfy_host, hypernetwork_dir, sd15_model, caplog,
                                                   node_messages):
    hypernetwork = s.load_raw(comfy_host, hypernetwork_dir, "sd1_on_sd1.pt",
                              make_raw_a1111_dict(dims=SD1_DIMS, std=0.01, name="sd1_on_sd1", seed=34))
    for speed_path in (True, False):
        with caplog.at_level(logging.WARNING):
            patched = _apply(comfy_host, sd15_model, hypernetwork, speed_path)
        assert not _warnings(caplog) and not node_messages
        assert _folded_attentions(patched) == ({"attn1", "attn2"} if speed_path else set())
