"""Hypernetwork to LoRA files read by the real diffusers (0.42.1) + peft (0.21.2), and by ComfyUI, alike.

Each reader's rule for a kohya module (``lora_up`` [out, r], ``lora_down`` [r, in], ``alpha``), read
from their code:

- ComfyUI (``comfy/weight_adapter/lora.py``, both hosts), A1111 (``extensions-builtin/Lora``:
  ``NetworkModule.calc_scale`` = alpha / dim, dim = ``lora_down.shape[0]``) and Forge
  (``backend/patcher/lora.py``: ``v[2] / mat2.shape[0]``): change = up @ down * alpha / r, with each
  module's own alpha and r.
- diffusers: ``lora_state_dict`` renames kohya keys (``_convert_non_diffusers_lora_to_diffusers``; SDXL's
  SGM names first through ``_maybe_map_sgm_blocks_to_diffusers`` with the UNet config) and collects the
  alphas; ``get_peft_kwargs`` makes one peft ``LoraConfig``: ``r`` = the most common rank with
  ``rank_pattern`` for the others (honoured), ``lora_alpha`` = the most common alpha with
  ``alpha_pattern`` for the others, which peft then reports as "alpha_pattern keys did not match any
  targeted module and were ignored". So a module's scale there is lora_alpha / its own r: per-module
  ranks are read, per-module alphas are not.

A file whose alpha is the same for every module therefore means the same in all of them; the export
writes one alpha and folds each module's r / alpha into its up factor. These tests build one random
UNet as a ComfyUI model and as a diffusers pipeline with the same weights (``diffusers_twin``: no
download), export with the node, load the file with the pipeline's ``load_lora_weights``,
``fuse_lora`` and compare every weight with ``W + s W A`` computed here in float64 from the A1111 file
(A = the product of the MLP's Linear weights), and with what ComfyUI's LoraLoaderModelOnly computes.
"""
from __future__ import annotations

import logging
import warnings

import pytest
import torch

from tests.inference import diffusers_twin as twin
from tests.inference import lora_export_support as le
from tests.inference import support as s
from tests.reference.a1111_reference import make_raw_a1111_dict

log = logging.getLogger(__name__)
STRENGTH = 0.8
RANK = 4  # below every projection's full rank in these layouts
WEIGHT_TOL = 1e-6  # of ||W||: what fp32 storage of W + dW allows (measured ~1e-7)
CHANGE_TOL = 1e-5  # of ||dW|| (measured ~1e-6): a wrong scale anywhere is an error of order 1


@pytest.fixture(params=sorted(twin.LAYOUTS))
def layout(request, comfy_host):
    return request.param


def _raw(dims, seed):
    return make_raw_a1111_dict(dims=dims, activation="linear", std=0.03, seed=seed)


def _mlp_matrices(raw) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """{dim: (A_k, A_v)}: a linear [1, 2, 1] MLP is x -> W1 (W0 x + b0) + b1, so A = W1 W0."""
    out = {}
    for dim in (k for k in raw if isinstance(k, int)):
        out[dim] = tuple(module["linear.1.weight"].double() @ module["linear.0.weight"].double()
                         for module in raw[dim])
    return out


def _best_rank(delta: torch.Tensor, rank: int) -> torch.Tensor:
    if rank == 0:
        return delta
    u, sv, vh = torch.linalg.svd(delta, full_matrices=False)
    return (u[:, :rank] * sv[:rank]) @ vh[:rank]


def _expected(weights: dict[str, torch.Tensor], matrices, rank: int) -> dict[str, torch.Tensor]:
    """Every to_k / to_v weight of the diffusers UNet with the hypernetwork's change, float64."""
    out = {}
    for key, w in weights.items():
        if key.endswith((".to_k.weight", ".to_v.weight")):
            a = matrices[int(w.shape[1])][0 if key.endswith(".to_k.weight") else 1]
            w = w.double()
            out[key] = w + _best_rank(STRENGTH * w @ a, rank)
    return out


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _diffusers_fused(layout: str, unet, path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[str]]:
    """(weights before, weights after load_lora_weights + fuse_lora + unload_lora_weights, warnings)."""
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    pipe = twin.pipeline(layout, unet)
    records, diffusers_logger = _Records(), logging.getLogger("diffusers")
    diffusers_logger.addHandler(records)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pipe.load_lora_weights(str(path.parent), weight_name=path.name)
            pipe.fuse_lora()
            pipe.unload_lora_weights()  # the fused weights stay; the LoRA layers go
    finally:
        diffusers_logger.removeHandler(records)
    messages = records.messages + [str(w.message) for w in caught]
    return before, {k: v.detach().clone() for k, v in pipe.unet.state_dict().items()}, messages


def _rel(got: torch.Tensor, want: torch.Tensor, scale: torch.Tensor) -> float:
    return float((got.double() - want).norm() / scale.double().norm())


@pytest.mark.parametrize("rank", [0, RANK], ids=["full_rank", f"rank_{RANK}"])
def test_diffusers_fuses_exactly_the_hypernetwork_change(comfy_host, hypernetwork_dir, layout, rank):
    import comfy.lora
    import comfy.model_management as mm

    model = twin.comfy_model(layout)
    # ComfyUI writes a loaded clone's LoRA patches into the weights all clones share (the export's own
    # measurement loads one): unload first, so both twins start from the plain weights.
    mm.unload_all_models()
    plain = {k: v.clone() for k, v in model.model.state_dict().items()}
    unet = twin.diffusers_unet(layout, model)
    raw = _raw(twin.LAYOUTS[layout].dims, seed=31)
    hypernetwork = s.load_raw(comfy_host, hypernetwork_dir, f"diffusers_{layout}.pt", raw)
    name, _report = le.to_lora(comfy_host, model, hypernetwork, f"diffusers_{layout}_r{rank}", strength=STRENGTH,
                               rank=rank, value_bias="drop (any reader)")
    path = comfy_host.model_dir("loras") / name

    before, after, messages = _diffusers_fused(layout, unet, path)
    # peft's "alpha_pattern keys did not match ... ignored", diffusers' "unexpected keys": neither
    assert not [m for m in messages if "did not match" in m or "unexpected keys" in m], messages
    expected = _expected(before, _mlp_matrices(raw), rank)
    blocks = sum(1 for k in before if k.endswith(".attn1.to_k.weight"))
    assert blocks > 0 and len(expected) == 4 * blocks  # to_k, to_v of attn1 and attn2: every width is in the file
    worst = [0.0, 0.0]
    for key, want in expected.items():
        weight_error = _rel(after[key], want, before[key])
        change_error = _rel(after[key] - before[key], want - before[key].double(), want - before[key].double())
        assert weight_error <= WEIGHT_TOL and change_error <= CHANGE_TOL, (key, weight_error, change_error)
        worst = [max(worst[0], weight_error), max(worst[1], change_error)]
    log.info("%s rank %s: diffusers fused, worst error %.2g of W, %.2g of dW", layout, rank or "full", *worst)
    untouched = [k for k in before if k not in expected and not torch.equal(after[k], before[k])]
    assert untouched == []  # no other weight (to_q, to_out, norms, ...) moved

    # ComfyUI's LoraLoaderModelOnly reads the same file to the same weights (its own weight patches).
    patched = le.lora_model(comfy_host, model, name)
    for key, want in expected.items():
        layer, projection, _ = key.rsplit(".", 2)
        comfy_key = f"diffusion_model.{twin.ldm_layer(layout, layer)}.{projection}.weight"
        original = plain[comfy_key]
        assert torch.equal(original, before[key])  # the twins' weights agree
        got = comfy.lora.calculate_weight(patched.patches[comfy_key], original.to(torch.float32, copy=True), comfy_key)
        assert _rel(got, want, original) <= WEIGHT_TOL, (comfy_key, _rel(got, want, original))
    mm.unload_all_models()


def test_the_header_alpha_is_the_files_alpha(comfy_host, hypernetwork_dir):
    """Every module carries the one alpha the kohya header states (what diffusers and tools rely on)."""
    from safetensors.torch import load_file

    model = twin.comfy_model("sd1_two_widths")
    hypernetwork = s.load_raw(comfy_host, hypernetwork_dir, "diffusers_header.pt", _raw((32, 64, 768), seed=32))
    name, _ = le.to_lora(comfy_host, model, hypernetwork, "diffusers_header", value_bias="drop (any reader)")
    path = comfy_host.model_dir("loras") / name
    alphas = {float(v) for k, v in load_file(str(path)).items() if k.endswith(".alpha")}
    assert alphas == {float(le.metadata(path)["ss_network_alpha"])}
