"""Load Hypernetwork shows what A1111 keeps beside a file: hashes, `<stem>.json` user metadata, the preview.

The node runs from ComfyUI's registry on real files in the hypernetworks folder; hashes are checked
against hashlib here, the preview copy against the picture's bytes.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from PIL import Image

from tests.inference import support as s
from tests.reference.a1111_reference import make_raw_a1111_dict

DIMS = (64,)


def _network(directory: Path, stem: str, seed: int = 0) -> Path:
    s.write_raw(directory, f"{stem}.pt", make_raw_a1111_dict(dims=DIMS, activation="relu", seed=seed))
    return directory / f"{stem}.pt"


def _picture(path: Path, colour) -> bytes:
    Image.new("RGB", (8, 8), colour).save(path)
    return path.read_bytes()


def _load(comfy_host, name: str) -> dict:
    return s.run_node(comfy_host, "LoadHypernetwork", hypernetwork_name=name)


def _temp_file(comfy_host, image: dict) -> Path:
    assert image["type"] == "temp" and image["subfolder"] == ""
    return Path(comfy_host.folder_paths.get_temp_directory()) / image["filename"]


def test_sidecar_fields_and_hashes_reach_the_outputs_and_the_node(comfy_host, hypernetwork_dir):
    path = _network(hypernetwork_dir, "sidecar_full")
    (hypernetwork_dir / "sidecar_full.json").write_text(json.dumps({
        "activation text": "inkwash, lineart", "preferred weight": 0.8, "sd version": "SD1",
        "description": "an ink style", "notes": "best with 20 steps", "negative text": "photo"}))
    picture = _picture(hypernetwork_dir / "sidecar_full.preview.png", (200, 30, 30))

    out = _load(comfy_host, "sidecar_full.pt")
    hypernetwork, info, activation_text, preferred_weight = out["result"]
    assert sorted(hypernetwork.network.dims) == list(DIMS)
    assert activation_text == "inkwash, lineart" and preferred_weight == 0.8
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    legacy = hashlib.sha256(data[1 << 20:(1 << 20) + (64 << 10)]).hexdigest()[:8]
    for expected in (sha256, sha256[:10], legacy, "inkwash, lineart", "0.8", "SD1", "an ink style",
                     "best with 20 steps", "photo", "sidecar_full.json", "sidecar_full.preview.png"):
        assert expected in info, (expected, info)
    assert "dims: 64" in info  # the network's own summary is still there

    assert out["ui"]["text"] == [info]
    [image] = out["ui"]["images"]
    copy = _temp_file(comfy_host, image)
    assert copy.read_bytes() == picture and copy.parent != hypernetwork_dir


def test_without_sidecars_the_outputs_are_neutral(comfy_host, hypernetwork_dir):
    _network(hypernetwork_dir, "sidecar_none")
    out = _load(comfy_host, "sidecar_none.pt")
    _, info, activation_text, preferred_weight = out["result"]
    assert activation_text == "" and preferred_weight == 1.0 and isinstance(preferred_weight, float)
    assert "images" not in out["ui"] and "preferred weight: not set" in info
    assert "warning" not in info


def test_zero_preferred_weight_means_not_set(comfy_host, hypernetwork_dir):
    _network(hypernetwork_dir, "sidecar_zero")
    (hypernetwork_dir / "sidecar_zero.json").write_text(json.dumps({"preferred weight": 0, "activation text": "x"}))
    _, _, activation_text, preferred_weight = _load(comfy_host, "sidecar_zero.pt")["result"]
    assert (activation_text, preferred_weight) == ("x", 1.0)


def test_a_broken_sidecar_warns_on_the_node_and_the_network_still_loads(comfy_host, hypernetwork_dir, caplog):
    _network(hypernetwork_dir, "sidecar_broken", seed=4)
    (hypernetwork_dir / "sidecar_broken.json").write_text('{"activation text": "ink", "preferred weight": ')
    with caplog.at_level(logging.WARNING):
        out = _load(comfy_host, "sidecar_broken.pt")
    hypernetwork, info, activation_text, preferred_weight = out["result"]
    assert hypernetwork.network.parameter_count() > 0
    assert (activation_text, preferred_weight) == ("", 1.0)
    warning = next(line for line in info.splitlines() if line.startswith("warning:"))
    assert "sidecar_broken.json" in warning and "not valid JSON" in warning, info
    assert "sidecar_broken.json" in caplog.text

    (hypernetwork_dir / "sidecar_broken.json").write_text('{"preferred weight": "strong", "activation text": "ink"}')
    s.file_mtime_bump(hypernetwork_dir / "sidecar_broken.json")
    _, info, activation_text, preferred_weight = _load(comfy_host, "sidecar_broken.pt")["result"]
    assert (activation_text, preferred_weight) == ("ink", 1.0)
    assert "'preferred weight'" in info and "sidecar_broken.json" in info


def test_preferred_weight_output_fits_apply_strength(comfy_host):
    load, apply = comfy_host.node_class("LoadHypernetwork"), comfy_host.node_class("ApplyHypernetwork")
    assert load.RETURN_NAMES == ("hypernetwork", "info", "activation_text", "preferred_weight")
    assert load.RETURN_TYPES[2:] == ("STRING", "FLOAT")
    assert apply.INPUT_TYPES()["required"]["strength"][0] == load.RETURN_TYPES[3]
    assert len(load.OUTPUT_TOOLTIPS) == len(load.RETURN_TYPES)


def test_preview_precedence_and_a_changed_picture_gets_a_new_copy(comfy_host, hypernetwork_dir):
    _network(hypernetwork_dir, "sidecar_pics")
    preview = _picture(hypernetwork_dir / "sidecar_pics.preview.png", (0, 0, 250))
    plain = _picture(hypernetwork_dir / "sidecar_pics.png", (0, 250, 0))
    [first] = _load(comfy_host, "sidecar_pics.pt")["ui"]["images"]
    assert _temp_file(comfy_host, first).read_bytes() == plain  # <stem>.png before <stem>.preview.png

    (hypernetwork_dir / "sidecar_pics.png").unlink()
    [second] = _load(comfy_host, "sidecar_pics.pt")["ui"]["images"]
    assert _temp_file(comfy_host, second).read_bytes() == preview and second["filename"] != first["filename"]

    repainted = _picture(hypernetwork_dir / "sidecar_pics.preview.png", (250, 250, 0))
    s.file_mtime_bump(hypernetwork_dir / "sidecar_pics.preview.png")
    [third] = _load(comfy_host, "sidecar_pics.pt")["ui"]["images"]
    assert third["filename"] != second["filename"] and _temp_file(comfy_host, third).read_bytes() == repainted
    assert _temp_file(comfy_host, second).read_bytes() == preview  # an earlier copy is left as it was shown


def test_is_changed_follows_the_sidecars(comfy_host, hypernetwork_dir):
    load = comfy_host.node_class("LoadHypernetwork")
    _network(hypernetwork_dir, "sidecar_watch")
    sidecar = hypernetwork_dir / "sidecar_watch.json"

    def changed():
        return load.IS_CHANGED(hypernetwork_name="sidecar_watch.pt")

    seen = [changed()]
    assert changed() == seen[0], "nothing changed"
    sidecar.write_text(json.dumps({"preferred weight": 0.5}))
    seen.append(changed())
    sidecar.write_text(json.dumps({"preferred weight": 0.7}))  # same size: only the time tells
    s.file_mtime_bump(sidecar)
    seen.append(changed())
    _picture(hypernetwork_dir / "sidecar_watch.preview.png", (1, 2, 3))
    seen.append(changed())
    (hypernetwork_dir / "sidecar_watch.description.txt").write_text("words")
    seen.append(changed())
    sidecar.unlink()
    seen.append(changed())
    assert len(set(seen)) == len(seen), seen
    assert changed() == seen[-1]
    # And the node run after the change reads the new value.
    sidecar.write_text(json.dumps({"preferred weight": 1.25}))
    assert _load(comfy_host, "sidecar_watch.pt")["result"][3] == 1.25


def test_hashes_are_computed_once_per_version_of_the_file(comfy_host, hypernetwork_dir):
    cache = comfy_host.pack_module("hn_comfy.files.file_hashes").HASHES
    path = _network(hypernetwork_dir, "sidecar_hashed", seed=1)
    before = cache.computed
    first = _load(comfy_host, "sidecar_hashed.pt")["result"][1]
    _load(comfy_host, "sidecar_hashed.pt")
    assert cache.computed == before + 1, "an unchanged file is hashed once"
    assert hashlib.sha256(path.read_bytes()).hexdigest() in first

    size = path.stat().st_size
    _network(hypernetwork_dir, "sidecar_hashed", seed=2)  # new weights, same structure
    stat = path.stat()
    assert stat.st_size == size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 7_000_000_000))
    second = _load(comfy_host, "sidecar_hashed.pt")["result"][1]
    new_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert cache.computed == before + 2 and new_sha in second and new_sha not in first

    # Same bytes, a new time: hashed again (the cache trusts only size and mtime), same answer.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 9_000_000_000))
    third = _load(comfy_host, "sidecar_hashed.pt")["result"][1]
    assert cache.computed == before + 3 and new_sha in third
