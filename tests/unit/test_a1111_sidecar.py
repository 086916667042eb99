"""A1111's sidecars beside a network: `<stem>.json` user metadata, description files, the preview picture.

Real files in a temp folder; broken sidecars give warnings that name the file and the key, never errors.
"""
from __future__ import annotations

import json
import logging

import pytest

from hn_core.formats import a1111_sidecar as sc


def _net(tmp_path, name="style.pt"):
    path = tmp_path / name
    path.write_bytes(b"weights")
    return path


def _json(tmp_path, data, stem="style"):
    path = tmp_path / f"{stem}.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def test_all_keys_a1111_and_its_lora_editor_write(tmp_path):
    net = _net(tmp_path)
    _json(tmp_path, {"description": "ink style", "notes": "train more", "activation text": "inkwash, lineart",
                     "negative text": "photo", "preferred weight": 0.75, "sd version": "SD1",
                     "tags": ["kept by other tools"], "extensions": {"x": 1}})
    meta = sc.read_user_metadata(net)
    assert (meta.description, meta.notes, meta.activation_text, meta.negative_text, meta.sd_version) == (
        "ink style", "train more", "inkwash, lineart", "photo", "SD1")
    assert meta.preferred_weight == 0.75 and meta.strength == 0.75
    assert meta.metadata_path == str(tmp_path / "style.json") == meta.description_path
    assert meta.warnings == ()


@pytest.mark.parametrize("written, strength", [
    (None, 1.0),           # no key: the default multiplier
    (0, 1.0),              # A1111's "set to 0 to disable"
    (0.0, 1.0),
    (1.4, 1.4),
    (2, 2.0),
    (-0.5, -0.5),          # a truthy value is used as written, as A1111 puts it into the prompt
    ("0.6", 0.6),          # ... and a numeric string works there too
])
def test_preferred_weight_is_the_default_strength_where_set_and_not_zero(tmp_path, written, strength):
    net = _net(tmp_path)
    _json(tmp_path, {"notes": "x"} if written is None else {"preferred weight": written})
    meta = sc.read_user_metadata(net)
    assert meta.strength == strength and isinstance(meta.strength, float)
    assert meta.warnings == ()


def test_no_sidecar_at_all(tmp_path):
    meta = sc.read_user_metadata(_net(tmp_path))
    assert meta == sc.UserMetadata() and meta.strength == 1.0
    assert sc.find_preview(tmp_path / "style.pt") is None


@pytest.mark.parametrize("text, where", [
    ('{"notes": "unterminated', "line 1"),
    ('{"notes": "a",\n "activation text": }', "line 2"),
    ("", "line 1"),
])
def test_invalid_json_is_a_warning_naming_the_file(tmp_path, caplog, text, where):
    net = _net(tmp_path)
    _json(tmp_path, text)
    with caplog.at_level(logging.WARNING):
        meta = sc.read_user_metadata(net)
    assert meta.strength == 1.0 and meta.activation_text == ""
    [warning] = meta.warnings
    assert "style.json" in warning and "not valid JSON" in warning and where in warning, warning
    assert warning in caplog.text


def test_wrong_types_warn_per_key_and_keep_the_good_keys(tmp_path):
    net = _net(tmp_path)
    _json(tmp_path, {"activation text": ["ink", "wash"], "preferred weight": "heavy", "notes": 3,
                     "description": "still read", "sd version": None})
    meta = sc.read_user_metadata(net)
    assert meta.description == "still read" and meta.activation_text == "" and meta.notes == ""
    assert meta.preferred_weight is None and meta.strength == 1.0 and meta.sd_version == ""
    assert len(meta.warnings) == 3, meta.warnings
    for key in ("'activation text'", "'preferred weight'", "'notes'"):
        assert any(key in w and w.startswith("style.json:") for w in meta.warnings), (key, meta.warnings)


@pytest.mark.parametrize("text", ['{"preferred weight": true}', '{"preferred weight": NaN}',
                                  '{"preferred weight": Infinity}', '{"preferred weight": {"v": 1}}'])
def test_unusable_weights_fall_back_to_strength_one(tmp_path, text):
    net = _net(tmp_path)
    _json(tmp_path, text)
    meta = sc.read_user_metadata(net)
    assert meta.preferred_weight is None and meta.strength == 1.0
    [warning] = meta.warnings
    assert "'preferred weight'" in warning and "style.json" in warning


def test_top_level_must_be_an_object(tmp_path):
    net = _net(tmp_path)
    _json(tmp_path, ["activation text", "ink"])
    [warning] = sc.read_user_metadata(net).warnings
    assert "style.json" in warning and "a list" in warning


def test_bom_is_accepted_and_other_encodings_warn(tmp_path):
    net = _net(tmp_path)
    (tmp_path / "style.json").write_bytes(b"\xef\xbb\xbf" + json.dumps({"activation text": "caf\u00e9"}).encode())
    assert sc.read_user_metadata(net).activation_text == "caf\u00e9"
    (tmp_path / "style.json").write_bytes('{"activation text": "caf\u00e9"}'.encode("latin-1"))
    meta = sc.read_user_metadata(net)
    assert meta.activation_text == "" and "not UTF-8" in meta.warnings[0] and "style.json" in meta.warnings[0]


def test_an_oversized_sidecar_is_not_read(tmp_path):
    net = _net(tmp_path)
    _json(tmp_path, {"notes": "x" * (sc.MAX_SIDECAR_BYTES + 10)})
    meta = sc.read_user_metadata(net)
    assert meta.notes == "" and "style.json" in meta.warnings[0] and "bytes" in meta.warnings[0]


def test_description_comes_from_json_then_txt_then_description_txt(tmp_path):
    net = _net(tmp_path)
    (tmp_path / "style.description.txt").write_text("from description.txt\n")
    meta = sc.read_user_metadata(net)
    assert meta.description == "from description.txt"
    assert meta.description_path == str(tmp_path / "style.description.txt")
    (tmp_path / "style.txt").write_text("from txt")
    assert sc.read_user_metadata(net).description == "from txt"
    _json(tmp_path, {"notes": "no description key"})
    assert sc.read_user_metadata(net).description == "from txt"
    _json(tmp_path, {"description": "from json"})
    assert sc.read_user_metadata(net).description == "from json"


def test_sidecars_follow_the_stem_for_every_suffix(tmp_path):
    for name in ("a.pt", "b.pth", "c.safetensors"):
        net = _net(tmp_path, name)
        stem = name.split(".")[0]
        _json(tmp_path, {"activation text": f"tag {stem}"}, stem=stem)
        assert sc.read_user_metadata(net).activation_text == f"tag {stem}"
    assert sc.metadata_path_for(tmp_path / "sub.dir" / "x.v2.pt") == str(tmp_path / "sub.dir" / "x.v2.json")


def test_preview_order_plain_before_preview_then_by_extension(tmp_path):
    net = _net(tmp_path)
    candidates = sc.preview_candidates(net)
    assert candidates[:4] == [str(tmp_path / n) for n in ("style.png", "style.preview.png", "style.jpg",
                                                           "style.preview.jpg")]
    assert {c.rsplit(".", 1)[1] for c in candidates} == {"png", "jpg", "jpeg", "webp", "gif"}
    # Found in that order, whichever files are there.
    for name in reversed(["style.png", "style.preview.png", "style.jpg", "style.preview.webp"]):
        (tmp_path / name).write_bytes(b"img")
        assert sc.find_preview(net) == str(tmp_path / name)
    (tmp_path / "style.png").unlink()
    assert sc.find_preview(net) == str(tmp_path / "style.preview.png")
    (tmp_path / "style.preview.png").unlink()
    assert sc.find_preview(net) == str(tmp_path / "style.jpg")


def test_a_folder_named_like_a_preview_is_not_one(tmp_path):
    net = _net(tmp_path)
    (tmp_path / "style.png").mkdir()
    assert sc.find_preview(net) is None
