"""Helpers for the inference integration tests: nodes through ComfyUI's registry, UNet outputs,
and an independent A1111 reference that hooks the attention modules of an unpatched model.

The reference never touches the pack's code: forward pre-hooks on each ``BasicTransformerBlock``'s
``attn1`` / ``attn2`` (``comfy.ldm.modules.attention.CrossAttention``) replace the key and value
inputs with ``tests.reference.a1111_reference.reference_chain`` of the raw A1111 dicts, exactly
where A1111 rewrites them (before ``to_k`` / ``to_v``). In ComfyUI's unpatched forward, attn1 is
called with ``context=None`` (the key input is the normed hidden state itself) and attn2 with the
text context; ``value`` is ``None`` in both, meaning "same as the key input".
"""
from __future__ import annotations

import contextlib
import os
import weakref
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from tests.host import models
from tests.reference import a1111_reference as ref

# --------------------------------------------------------------------------------------------
# Nodes, called the way ComfyUI's executor calls them: class from the registry, FUNCTION method,
# under torch.inference_mode.
# --------------------------------------------------------------------------------------------


def run_node(comfy_host, name: str, **inputs):
    cls = comfy_host.node_class(name)
    with torch.inference_mode():
        return getattr(cls(), cls.FUNCTION)(**inputs)


def load_node(comfy_host, filename: str):
    """LoadHypernetwork -> (HYPERNETWORK, info STRING, ui dict); its sidecar outputs follow those two."""
    out = run_node(comfy_host, "LoadHypernetwork", hypernetwork_name=filename)
    hypernetwork, info = out["result"][:2]
    return hypernetwork, info, out["ui"]


def apply_node(comfy_host, model, hypernetwork, strength: float = 1.0, speed_path: bool = True):
    (patched,) = run_node(comfy_host, "ApplyHypernetwork", model=model, hypernetwork=hypernetwork,
                          strength=strength, speed_path=speed_path)
    return patched


STRENGTH_DEFAULTS = dict(self_attention=1.0, cross_attention=1.0, input_blocks=1.0, middle_block=1.0,
                         output_blocks=1.0, start_percent=0.0, end_percent=1.0, block_weights="")


def strength_node(comfy_host, hypernetwork, **profile):
    (out,) = run_node(comfy_host, "HypernetworkStrength", hypernetwork=hypernetwork,
                      **{**STRENGTH_DEFAULTS, **profile})
    return out


def write_raw(directory: Path, filename: str, raw: Mapping) -> str:
    """``torch.save`` a raw A1111 dict into the hypernetworks folder; returns the name to select."""
    path = Path(directory) / filename
    torch.save(dict(raw), path)
    return filename


def load_raw(comfy_host, directory: Path, filename: str, raw: Mapping):
    """Write ``raw`` and load it through the LoadHypernetwork node."""
    write_raw(directory, filename, raw)
    return load_node(comfy_host, filename)[0]


def is_folded(patched) -> bool:
    """Whether Apply took the speed path (linear hypernetwork folded into to_k/to_v object patches)."""
    return any(key.endswith((".to_k", ".to_v")) for key in patched.object_patches)


# --------------------------------------------------------------------------------------------
# UNet outputs
# --------------------------------------------------------------------------------------------


def eps(patcher, x, sigma: float, context, sigmas=None) -> torch.Tensor:
    """The UNet's own output (epsilon) for one evaluation through ComfyUI's sampling path.

    ``unet_forward`` returns the denoised x0 = x - sigma * eps; comparing x0 would dilute the
    UNet's error with x itself, so the comparisons use eps.
    """
    denoised = models.unet_forward(patcher, x, sigma, context, sigmas=sigmas)
    return (x - denoised) / sigma


_plain_cache: list[tuple] = []


def plain_eps(patcher, x, sigma: float, context) -> torch.Tensor:
    """:func:`eps` of an unpatched model, remembered per (UNet, inputs): many tests compare with it.

    Only for models without any patch; the tests of an untouched input model never use this.
    """
    assert not patcher.object_patches and "patches" not in patcher.model_options["transformer_options"]
    for model, s, xx, cc, out in _plain_cache:
        if model() is patcher.model and s == sigma and torch.equal(xx, x) and torch.equal(cc, context):
            return out
    out = eps(patcher, x, sigma, context)
    # A weak reference: the cache must not keep a dropped full-size UNet (gigabytes) alive.
    _plain_cache.append((weakref.ref(patcher.model), sigma, x.clone(), context.clone(), out))
    del _plain_cache[:-8]
    return out


def eps_rows(patcher, x, row_sigmas: torch.Tensor, context, sigmas=None) -> torch.Tensor:
    """Like :func:`eps`, but each batch row at its own sigma (one model call, as a sampler batches)."""
    import comfy.samplers

    row_sigmas = row_sigmas.float()
    sigmas = torch.tensor([float(row_sigmas.max()), 0.0]) if sigmas is None else sigmas.float()
    captured = []

    def one_call(model, noise, sched, extra_args=None, callback=None, disable=None):
        captured.append(model(x.to(noise.device), row_sigmas.to(noise.device), **extra_args))
        return noise

    with torch.inference_mode():
        comfy.samplers.sample(patcher, torch.zeros_like(x), [[context, {}]], [[context, {}]], 1.0,
                              patcher.load_device, comfy.samplers.KSAMPLER(one_call), sigmas,
                              latent_image=torch.zeros_like(x), seed=0, disable_pbar=True)
    denoised = captured[0].float().cpu()
    return (x - denoised) / row_sigmas.view(-1, 1, 1, 1)


def rel_err(out: torch.Tensor, reference: torch.Tensor) -> float:
    """||out - reference|| / ||reference||, in float64."""
    out, reference = out.double(), reference.double()
    return float((out - reference).norm() / reference.norm())


# --------------------------------------------------------------------------------------------
# The hook reference
# --------------------------------------------------------------------------------------------

# weight(block, transformer_index, kind) -> multiplier of every strength at that attention layer
LayerWeight = Callable[[tuple, int, str], float]


def _everywhere(block, index, kind) -> float:
    return 1.0


@contextlib.contextmanager
def _memoized_reference_pairs():
    # reference_transform rebuilds (and randomly initialises) every MLP of the file on each call;
    # for full-size UNets that is most of the test time. Same maths, built once per raw dict.
    original = ref.build_reference_pairs
    cache: dict[int, tuple] = {}

    def cached(raw):
        entry = cache.get(id(raw))
        if entry is None or entry[0] is not raw:
            entry = cache[id(raw)] = (raw, original(raw))
        return entry[1]

    ref.build_reference_pairs = cached
    try:
        yield
    finally:
        ref.build_reference_pairs = original


@contextlib.contextmanager
def a1111_hooks(patcher, raws: Sequence[Mapping], strengths: Sequence[float] | None = None,
                weight: LayerWeight = _everywhere):
    """Hook ``reference_chain(raws, k, v, strengths * weight(...))`` into every attention layer.

    ``patcher`` must be unpatched (no attention patches, no object patches): the hooks sit on the
    shared ``diffusion_model`` modules and are removed on exit.
    """
    strengths = [1.0] * len(raws) if strengths is None else list(strengths)
    assert not patcher.object_patches and "patches" not in patcher.model_options["transformer_options"], \
        "the reference must run on an unpatched model"
    handles = []

    def make_hook(block, index, kind):
        scale = weight(block, index, kind)

        def hook(module, args, kwargs):
            # Guard: no stand-in projection of the pack may be live in the model the reference runs.
            assert not hasattr(module.to_k, "hn_records") and not hasattr(module.to_v, "hn_records")
            (x,) = args
            key = kwargs.get("context")
            key = x if key is None else key
            value = kwargs.get("value")
            value = key if value is None else value
            if scale == 0.0:
                return None
            k, v = ref.reference_chain(raws, key, value, [s * scale for s in strengths])
            return args, {**kwargs, "context": k, "value": v}

        return hook

    with _memoized_reference_pairs():
        try:
            for block, index, transformer in models.transformer_blocks(patcher):
                for kind in ("attn1", "attn2"):
                    attention = getattr(transformer, kind)
                    handles.append(attention.register_forward_pre_hook(make_hook(block, index, kind),
                                                                       with_kwargs=True))
            yield
        finally:
            for handle in handles:
                handle.remove()


def reference_eps(patcher, raws, x, sigma, context, strengths=None, weight: LayerWeight = _everywhere,
                  sigmas=None) -> torch.Tensor:
    """The UNet output with the A1111 reference hooked in (``patcher`` unpatched)."""
    with a1111_hooks(patcher, raws, strengths, weight):
        return eps(patcher, x, sigma, context, sigmas=sigmas)


def file_mtime_bump(path: Path, seconds: int = 5) -> None:
    """Move a file's mtime forward, so a rewrite is visible even on coarse-timestamp file systems."""
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 1_000_000_000))


# --------------------------------------------------------------------------------------------
# Reduced-precision copies of the tiny model
# --------------------------------------------------------------------------------------------


def tiny_sd1_in(dtype: torch.dtype, manual_cast_dtype: torch.dtype | None):
    """The tiny SD1 UNet with the fixture's fp32 weights rounded to ``dtype``.

    ``manual_cast_dtype`` None: computes in ``dtype`` (what ComfyUI picks on a GPU that supports it).
    Otherwise ComfyUI's manual casting: weights stored in ``dtype``, each layer cast to
    ``manual_cast_dtype`` when it runs (what ComfyUI picks when the device cannot compute in
    ``dtype``). The choice is made where ComfyUI makes it: the model config, before the model is built.
    """
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models

    config = comfy.supported_models.SD15(dict(models.TINY_SD1_UNET))
    config.set_inference_dtype(dtype, manual_cast_dtype)
    model = config.get_model({}, device=mm.unet_offload_device())
    fp32 = models.build(comfy.supported_models.SD15, models.TINY_SD1_UNET, seed=0, dtype=torch.float32)
    model.diffusion_model.load_state_dict(fp32.model.diffusion_model.state_dict())
    model.diffusion_model.eval()
    assert model.get_dtype() == dtype and model.manual_cast_dtype == manual_cast_dtype
    return comfy.model_patcher.ModelPatcher(model, load_device=mm.get_torch_device(),
                                            offload_device=mm.unet_offload_device())
