"""Which of a file's dims act on a model, and the warning when the file was made for another family."""
from __future__ import annotations

from hn_core.inference.family_match import match_family

SD1 = ({320, 640, 1280}, {768})  # self-attention widths, cross-attention widths
SD2 = ({320, 640, 1280}, {1024})
SDXL = ({640, 1280}, {2048})


def test_sd1_file_on_sdxl_names_both_families_and_what_acts():
    match = match_family((320, 640, 768, 1280), *SDXL, name="sd1_style")
    assert match.self_attention_dims == (640, 1280) and match.cross_attention_dims == ()
    assert match.unused_dims == (320, 768)
    assert match.warning == ("hypernetwork 'sd1_style' was made for SD1.x (context 768); the model is SDXL "
                             "(context 2048): only its self-attention widths 640, 1280 are patched; "
                             "dims 320, 768 unused")


def test_sd2_file_on_sd1():
    match = match_family((320, 640, 1024, 1280), *SD1)
    assert match.used_dims == (320, 640, 1280) and match.unused_dims == (1024,)
    assert match.warning == ("this hypernetwork was made for SD2.x (context 1024); the model is SD1.x "
                             "(context 768): only its self-attention widths 320, 640, 1280 are patched; "
                             "dim 1024 unused")


def test_files_that_fit_warn_nothing():
    assert match_family((320, 640, 768, 1280), *SD1).warning is None
    assert match_family((768,), *SD1).warning is None
    assert match_family((320, 640, 1024, 1280), *SD2).warning is None
    assert match_family((640, 1280, 2048), *SDXL).warning is None
    assert match_family((640,), *SDXL).warning is None  # self-attention only, every dim used


def test_context_mismatch_alone_warns():
    # Every dim meets a layer (the 768 of SD1 happens to be a self-attention width of this odd model),
    # but the file's text context is not the model's: still another family.
    match = match_family((768,), {768}, {1024})
    assert match.unused_dims == () and match.warning is not None
    assert "SD1.x (context 768)" in match.warning and "SD2.x (context 1024)" in match.warning


def test_an_unused_dim_warns_even_when_the_context_fits():
    match = match_family((768, 1024), *SD1)
    assert match.cross_attention_dims == (768,) and match.unused_dims == (1024,)
    assert "dim 1024 unused" in match.warning and "cross-attention width 768 is patched" in match.warning


def test_nothing_matches_says_it_changes_nothing():
    match = match_family((320, 1024), {32, 64, 128}, {768})
    assert match.used_dims == ()
    assert "changes nothing" in match.warning and "dims 320, 1024 unused" in match.warning
    assert "SD2.x (context 1024)" in match.warning and "SD1.x (context 768)" in match.warning


def test_an_unknown_context_width_is_named_as_such():
    match = match_family((320, 768), {320}, {4096})
    assert "the model is an unknown family (context 4096)" in match.warning
