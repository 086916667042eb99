"""Files hn_core must refuse with a clear ``HypernetworkError`` naming the file and the problem."""

from __future__ import annotations

import builtins
import math
import os
import pickle
import random
import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import hn_core
from tests.reference.a1111_reference import make_raw_a1111_dict


def _expect_error(path, problem_pattern):
    """Load ``path``; require a HypernetworkError naming the file and matching the problem."""
    with pytest.raises(hn_core.HypernetworkError) as info:
        hn_core.load_hypernetwork(path)
    err = info.value
    message = str(err)
    assert path.name in message, f"file name missing from: {message!r}"
    # the structured fields
    assert os.fspath(err.path) == os.fspath(path) or os.path.basename(os.fspath(err.path)) == path.name
    assert isinstance(err.problem, str) and err.problem.strip()
    assert err.problem in message
    # the problem is matched without the file name, so a name like "missing.pt" proves nothing
    problem = err.problem.replace(os.fspath(path), "<path>").replace(path.name, "<file>")
    assert re.search(problem_pattern, problem, re.IGNORECASE), (
        f"problem /{problem_pattern}/ not described in: {message!r}"
    )
    return err


def _valid_raw(**kw):
    kw.setdefault("dims", (8, 16))
    kw.setdefault("activation", "relu")
    return make_raw_a1111_dict(**kw)


def _save_raw(tmp_path, raw, name="x.pt"):
    path = tmp_path / name
    torch.save(raw, path)
    return path


# ---------------------------------------------------------------- file-level problems


@pytest.mark.parametrize("name", ["absent.pt", "absent.safetensors"])
def test_missing_file(tmp_path, name):
    _expect_error(tmp_path / name, r"not found|no such|does not exist|missing|not exist")


@pytest.mark.parametrize("name", ["zero.pt", "zero.safetensors"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    _expect_error(path, r"empty|0 bytes|zero bytes|no data")


def test_lora_safetensors(tmp_path):
    tensors = {
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.randn(4, 320),
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.randn(320, 4),
        "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": torch.tensor(4.0),
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.randn(4, 768),
    }
    path = tmp_path / "download_01.safetensors"
    save_file(tensors, str(path), metadata={"ss_network_module": "networks.lora"})
    _expect_error(path, r"not a hypernetwork|lora|no hypernetwork|unrecogni[sz]ed|not .*hypernetwork")


def test_checkpoint_like_pt(tmp_path):
    raw = {
        "state_dict": {
            "model.diffusion_model.input_blocks.0.0.weight": torch.randn(4, 4, 3, 3),
            "model.diffusion_model.input_blocks.0.0.bias": torch.randn(4),
        },
        "global_step": 1000,
    }
    path = _save_raw(tmp_path, raw, "download_02.pt")
    _expect_error(path, r"not a hypernetwork|checkpoint|no hypernetwork|no dim|unrecogni[sz]ed|not .*hypernetwork")


def test_checkpoint_like_safetensors(tmp_path):
    path = tmp_path / "download_03.safetensors"
    save_file({"model.diffusion_model.out.2.weight": torch.randn(4, 4)}, str(path))
    _expect_error(path, r"not a hypernetwork|checkpoint|no hypernetwork|unrecogni[sz]ed|not .*hypernetwork")


def test_pt_not_a_dict(tmp_path):
    path = _save_raw(tmp_path, [torch.randn(3)], "list.pt")
    _expect_error(path, r"dict|not a hypernetwork|unrecogni[sz]ed|not .*hypernetwork")


TRUNCATED = r"truncat|corrupt|incomplete|damaged|invalid|not a valid|cannot read|could not read|unreadable"


def test_truncated_pt(tmp_path):
    full = _save_raw(tmp_path, _valid_raw(), "full.pt")
    data = full.read_bytes()
    path = tmp_path / "half.pt"
    path.write_bytes(data[: len(data) // 2])
    _expect_error(path, TRUNCATED)


def test_truncated_safetensors(tmp_path):
    net = hn_core.load_hypernetwork(_save_raw(tmp_path, _valid_raw()))
    full = tmp_path / "full.safetensors"
    hn_core.save_hypernetwork(net, full)
    assert hn_core.load_hypernetwork(full).dims  # the full one is fine
    data = full.read_bytes()
    path = tmp_path / "half.safetensors"
    path.write_bytes(data[: len(data) // 2])
    _expect_error(path, TRUNCATED)


GARBAGE = {
    "random": random.Random(0).randbytes(4096),
    "random2": random.Random(1).randbytes(100),
    "text": b"this is a text file, not a model\n" * 20,
    "zeros": bytes(4096),
}


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("kind", list(GARBAGE))
def test_random_garbage(tmp_path, kind, suffix):
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(GARBAGE[kind])
    err = _expect_error(path, TRUNCATED + r"|not a .*file|unknown format|unrecogni[sz]ed")
    # garbage is damaged data, not an attack: it must not be reported as pickled code
    assert not re.search(r"pickled code|could run code", err.problem, re.IGNORECASE), str(err)


# ---------------------------------------------------------------- unsafe pickles


class _SystemPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker!s}",))


class _OpenPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


class _EvalPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.eval, (f"open({self.marker!r}, 'w').close()",))


UNSAFE = r"unsafe|weights.only|refus|not allowed|forbidden|disallowed|pickle|untrusted|code"
PAYLOADS = [_SystemPayload, _OpenPayload, _EvalPayload]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_malicious_plain_pickle(tmp_path, payload):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({768: payload(marker)}, f)
    _expect_error(path, UNSAFE)
    assert not marker.exists(), "the pickle was executed"


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("zipped", [True, False])
def test_malicious_torch_save(tmp_path, payload, zipped):
    marker = tmp_path / "pwned"
    raw = _valid_raw(dims=(8,))
    raw["optional_info"] = payload(marker)
    path = tmp_path / "evil.pt"
    torch.save(raw, path, _use_new_zipfile_serialization=zipped)
    assert not marker.exists()  # saving does not run it
    _expect_error(path, UNSAFE)
    assert not marker.exists(), "the pickle was executed"


def test_malicious_whole_object(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil2.pt"
    torch.save(_OpenPayload(marker), path)
    _expect_error(path, UNSAFE)
    assert not marker.exists(), "the pickle was executed"


# ---------------------------------------------------------------- structural problems

SHAPE = r"shape|size|mismatch|does not match|doesn't match|expected"


def test_shapes_contradict_layer_structure(tmp_path):
    raw = _valid_raw(layer_structure=[1, 3, 1])
    raw["layer_structure"] = [1, 2, 1]
    _expect_error(_save_raw(tmp_path, raw), SHAPE)


def test_shapes_contradict_dim(tmp_path):
    raw = _valid_raw(dims=(16,))
    raw[8] = raw.pop(16)
    _expect_error(_save_raw(tmp_path, raw), SHAPE)


def test_shapes_contradict_layer_norm_flag(tmp_path):
    # file says no layer norm but carries LayerNorm weights at shifted indices
    raw = _valid_raw(is_layer_norm=True)
    raw["is_layer_norm"] = False
    _expect_error(_save_raw(tmp_path, raw), SHAPE + r"|missing|unexpected|key")


@pytest.mark.parametrize("activation", ["foobar", "Swish!", "threshold", "multiheadattention"])
def test_unknown_or_unusable_activation(tmp_path, activation):
    raw = _valid_raw()
    raw["activation_func"] = activation
    _expect_error(_save_raw(tmp_path, raw), r"activation")
    # and the message names the offending value
    with pytest.raises(hn_core.HypernetworkError) as info:
        hn_core.load_hypernetwork(tmp_path / "x.pt")
    assert activation in str(info.value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", [(8, 0, "linear.0.weight"), (16, 1, "linear.2.bias")])
def test_non_finite_weights_pt(tmp_path, value, where):
    raw = _valid_raw()
    dim, side, key = where
    raw[dim][side][key].view(-1)[0] = value
    _expect_error(_save_raw(tmp_path, raw), r"nan|inf|non-finite|not finite|nonfinite")


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_weights_safetensors(tmp_path, value):
    net = hn_core.load_hypernetwork(_save_raw(tmp_path, _valid_raw()))
    good = tmp_path / "good.safetensors"
    hn_core.save_hypernetwork(net, good)
    with safe_open(str(good), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = f.metadata()
    key = sorted(k for k, t in tensors.items() if t.is_floating_point() and t.numel() > 1)[0]
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = value
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=metadata)
    _expect_error(bad, r"nan|inf|non-finite|not finite|nonfinite")


def _not_pairs():
    sd = _valid_raw(dims=(8,))[8][0]
    return {
        "bare_dict": sd,
        "one": [sd],
        "three": [sd, sd, sd],
        "dict_and_str": [sd, "x"],
        "tensor": torch.zeros(3),
        "none": None,
        "string": "not a pair",
    }


@pytest.mark.parametrize("case", list(_not_pairs()))
def test_dim_entry_not_a_pair(tmp_path, case):
    raw = _valid_raw()
    raw[8] = _not_pairs()[case]
    err = _expect_error(_save_raw(tmp_path, raw), r"pair|two|2 state|expected")
    assert "8" in str(err), "the message should name the dim"


@pytest.mark.parametrize(
    "mutation",
    ["drop_bias", "extra_key", "renamed_key", "empty_state_dict", "non_tensor_value"],
)
def test_wrong_or_missing_keys(tmp_path, mutation):
    raw = _valid_raw()
    sd = raw[16][1]
    if mutation == "drop_bias":
        del sd["linear.0.bias"]
        needle = "linear.0.bias"
    elif mutation == "extra_key":
        sd["linear.7.weight"] = torch.randn(16, 16)
        needle = "linear.7.weight"
    elif mutation == "renamed_key":
        sd["linear.5.weight"] = sd.pop("linear.2.weight")
        needle = "linear."
    elif mutation == "empty_state_dict":
        sd.clear()
        needle = "linear.0.weight"
    else:
        sd["linear.0.bias"] = [0.0] * 32
        needle = "linear.0.bias"
    err = _expect_error(_save_raw(tmp_path, raw), r"missing|unexpected|key|tensor|not a tensor")
    assert needle in str(err), f"the message should name the key {needle!r}: {err}"
