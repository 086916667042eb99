"""The A1111 ``<file>.optim`` sidecar: optimizer state kept beside a ``.pt``, used only on a hash match."""

from __future__ import annotations

import hashlib

import torch

import hn_core
from tests.reference.a1111_reference import make_raw_a1111_dict


def _make_pt(tmp_path, seed=0, name="net.pt"):
    path = tmp_path / name
    torch.save(make_raw_a1111_dict(dims=(8,), activation="relu", seed=seed), path)
    return path


def _optimizer_state():
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))]
    opt = torch.optim.AdamW(params, lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        loss = (params[0].sum() * params[1].sum()) ** 2
        loss.backward()
        opt.step()
    return opt.state_dict()


def _sidecar(pt_path):
    return pt_path.with_name(pt_path.name + ".optim")


def _expected_hash(pt_path):
    return hashlib.sha256(pt_path.read_bytes()).hexdigest()[:10]


def _assert_state_equal(a, b):
    assert set(a) == set(b)
    assert a["param_groups"] == b["param_groups"]
    assert set(a["state"]) == set(b["state"])
    for idx, st in a["state"].items():
        assert set(st) == set(b["state"][idx])
        for key, value in st.items():
            other = b["state"][idx][key]
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, other), (idx, key)
            else:
                assert value == other, (idx, key)


def test_roundtrip_when_pt_matches(tmp_path):
    pt = _make_pt(tmp_path)
    state = _optimizer_state()
    hn_core.save_optimizer_state(pt, "AdamW", state)
    assert _sidecar(pt).is_file()

    got = hn_core.load_optimizer_state(pt)
    assert got is not None
    assert got["optimizer_name"] == "AdamW"
    _assert_state_equal(state, got["optimizer_state_dict"])

    # the state loads back into a fresh optimizer
    params = [torch.nn.Parameter(torch.zeros(4, 3)), torch.nn.Parameter(torch.zeros(3))]
    torch.optim.AdamW(params, lr=1e-3).load_state_dict(got["optimizer_state_dict"])


def test_sidecar_layout_and_hash(tmp_path):
    pt = _make_pt(tmp_path)
    hn_core.save_optimizer_state(pt, "AdamW", _optimizer_state())
    side = torch.load(_sidecar(pt), map_location="cpu", weights_only=True)
    assert isinstance(side, dict)
    assert {"optimizer_name", "optimizer_state_dict", "hash"} <= set(side)
    assert side["hash"] == _expected_hash(pt)
    assert len(side["hash"]) == 10
    assert side["optimizer_name"] == "AdamW"


def test_hash_of_file_written_by_save_hypernetwork(tmp_path):
    net = hn_core.load_hypernetwork(_make_pt(tmp_path, name="src.pt"))
    pt = tmp_path / "saved.pt"
    hn_core.save_hypernetwork(net, pt)
    hn_core.save_optimizer_state(pt, "AdamW", _optimizer_state())
    side = torch.load(_sidecar(pt), map_location="cpu", weights_only=True)
    assert side["hash"] == _expected_hash(pt)
    assert hn_core.load_optimizer_state(pt) is not None


def test_changed_pt_gives_none(tmp_path):
    pt = _make_pt(tmp_path, seed=1)
    hn_core.save_optimizer_state(pt, "AdamW", _optimizer_state())
    before = _expected_hash(pt)
    torch.save(make_raw_a1111_dict(dims=(8,), activation="relu", seed=2), pt)  # overwritten
    assert _expected_hash(pt) != before
    assert hn_core.load_optimizer_state(pt) is None
    assert _sidecar(pt).is_file()  # not an error, and nothing deleted behind our back


def test_single_byte_change_gives_none(tmp_path):
    pt = _make_pt(tmp_path)
    hn_core.save_optimizer_state(pt, "AdamW", _optimizer_state())
    pt.write_bytes(pt.read_bytes() + b"\0")
    assert hn_core.load_optimizer_state(pt) is None


def test_no_sidecar_gives_none(tmp_path):
    pt = _make_pt(tmp_path)
    assert not _sidecar(pt).exists()
    assert hn_core.load_optimizer_state(pt) is None


def test_sidecar_of_other_file_gives_none(tmp_path):
    a = _make_pt(tmp_path, seed=1, name="a.pt")
    b = _make_pt(tmp_path, seed=2, name="b.pt")
    hn_core.save_optimizer_state(a, "AdamW", _optimizer_state())
    _sidecar(b).write_bytes(_sidecar(a).read_bytes())  # a's sidecar copied beside b
    assert hn_core.load_optimizer_state(b) is None
    assert hn_core.load_optimizer_state(a) is not None


def test_a1111_written_sidecar_is_read(tmp_path):
    # a sidecar as A1111 writes it, made here without hn_core
    pt = _make_pt(tmp_path)
    state = _optimizer_state()
    torch.save(
        {"hash": _expected_hash(pt), "optimizer_name": "AdamW", "optimizer_state_dict": state},
        _sidecar(pt),
    )
    got = hn_core.load_optimizer_state(pt)
    assert got is not None and got["optimizer_name"] == "AdamW"
    _assert_state_equal(state, got["optimizer_state_dict"])
