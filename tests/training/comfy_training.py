"""Helpers for the TrainHypernetwork / SaveHypernetwork tests on the real in-process ComfyUI.

Models here are built the way a loader node builds them: under ``torch.inference_mode()``, so
their weights are inference tensors (the trap training must handle). Nodes are called as
ComfyUI's executor calls them: under inference mode, with every input of an INPUT_IS_LIST node
wrapped in a list.
"""
from __future__ import annotations

import torch

from tests.host import models

SOCKETS = ("model", "latents", "conditioning")

# SD2.x-v in miniature: 1024-wide text context, linear projections in the transformers and
# v-prediction. ComfyUI's SD20 fixes the head size at 64, so the narrowest level is 64 wide.
TINY_SD2_UNET = {**models.TINY_SD1_UNET, "model_channels": 64, "context_dim": 1024, "use_linear_in_transformer": True}

# SDXL in miniature: 2048-wide context and the pooled-text + size embedding (`y`) SDXL needs.
TINY_SDXL_UNET = {**models.TINY_SD1_UNET, "model_channels": 64, "num_classes": "sequential", "adm_in_channels": 2816,
                  "context_dim": 2048, "use_linear_in_transformer": True}
TINY_SDXL_UNET.pop("num_heads")

_built: dict[tuple, object] = {}


def loader_built(kind: str = "sd1", seed: int = 0):
    """A tiny model whose weights are inference tensors, as after CheckpointLoaderSimple (cached)."""
    key = (kind, seed)
    if key not in _built:
        import comfy.model_base
        import comfy.supported_models

        if kind == "sd1":
            config_cls, unet = comfy.supported_models.SD15, models.TINY_SD1_UNET
        elif kind == "sd2v":
            class TinySD2V(comfy.supported_models.SD20):
                def model_type(self, state_dict, prefix=""):
                    return comfy.model_base.ModelType.V_PREDICTION
            config_cls, unet = TinySD2V, TINY_SD2_UNET
        elif kind == "sdxl":
            config_cls, unet = comfy.supported_models.SDXL, TINY_SDXL_UNET
        else:
            raise ValueError(kind)
        with torch.inference_mode():
            _built[key] = models.build(config_cls, unet, seed)
    return _built[key].clone()


def dataset(count: int = 4, size: int = 8, context_dim: int = 768, seed: int = 0, per_image: bool = True):
    """A learnable dataset: smooth latents, two prompts alternating. Made under inference mode,
    like VAE Encode / CLIP Text Encode outputs. Returns (LATENT inputs, CONDITIONING inputs)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        ramps = torch.linspace(-1, 1, size)
        base = ramps[None, :] * ramps[:, None]
        latents = torch.stack([
            torch.stack([base * (1.5 + c + i % 2) for c in range(4)]) for i in range(count)
        ]) + 0.05 * torch.randn(count, 4, size, size, generator=generator)
        prompts = [torch.randn(1, 77, context_dim, generator=generator) for _ in range(2)]
        if not per_image:
            return [{"samples": latents}], [[[prompts[0], {}]]]
        return ([{"samples": latents[i:i + 1]} for i in range(count)],
                [[[prompts[i % 2], {}]] for i in range(count)])


def tiny_vae(seed: int = 0):
    """ComfyUI's own VAE class (AutoencoderKL, 8x downscale, 4 latent channels like SD1's) at a
    tiny width with random weights, built under inference mode like a loader's."""
    import comfy.sd

    from tests.host import models

    ddconfig = {"double_z": True, "z_channels": 4, "resolution": 64, "in_channels": 3, "out_ch": 3, "ch": 32,
                "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
    with torch.inference_mode():
        vae = comfy.sd.VAE(sd={}, config={"params": {"embed_dim": 4, "ddconfig": ddconfig}})
        models.randomize_(vae.first_stage_model, seed=seed)  # ComfyUI's layers skip initialisation
    return vae


def widget_defaults(node_cls) -> dict:
    return {name: spec[1]["default"] for name, spec in node_cls.INPUT_TYPES()["required"].items()
            if name not in SOCKETS}


def train(host, model, latents, conditioning, hypernetwork=None, **widgets):
    """Run TrainHypernetwork as ComfyUI's executor would; returns its first four outputs (model,
    hypernetwork, loss map, steps)."""
    return train_node_output(host, model, latents, conditioning, hypernetwork, **widgets)["result"][:4]


def train_node_output(host, model, latents, conditioning, hypernetwork=None, list_inputs=None, **widgets) -> dict:
    """TrainHypernetwork's whole return value ({"ui": ..., "result": all outputs}). `list_inputs`
    are passed as given (lists, e.g. several conditionings); `widgets` are wrapped one per list."""
    cls = host.node_class("TrainHypernetwork")
    values = {**widget_defaults(cls), **widgets}
    with torch.inference_mode():
        return cls().train(model=[model], latents=latents, conditioning=conditioning,
                           hypernetwork=[hypernetwork] if hypernetwork is not None else None,
                           unique_id=["7"], **{k: [v] for k, v in values.items()}, **(list_inputs or {}))


def save(host, hypernetwork, filename, format="pt (A1111)", overwrite=False) -> str:
    with torch.inference_mode():
        out = host.node_class("SaveHypernetwork")().save(hypernetwork, filename, format, overwrite)
    return out["result"][0]


def load(host, filename):
    with torch.inference_mode():
        return host.node_class("LoadHypernetwork")().load(filename)["result"][0]


def model_fingerprint(model) -> dict:
    """Everything training must leave as it was on the shared model."""
    import copy

    unet = model.model
    return {
        "state": {k: v.detach().clone() for k, v in unet.state_dict().items()},
        "requires_grad": {n: p.requires_grad for n, p in unet.named_parameters()},
        "training": {n: m.training for n, m in unet.named_modules()},
        "own_forward": [n for n, m in unet.named_modules() if "forward" in m.__dict__],
        "options": copy.deepcopy(model.model_options),
        "patches": dict(model.patches),
        "object_patches": dict(model.object_patches),
        "wrappers": copy.deepcopy(model.wrappers),
    }


def assert_same_fingerprint(before: dict, after: dict) -> None:
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), f"weight {key} changed"
    assert before["requires_grad"] == after["requires_grad"]
    assert before["training"] == after["training"]
    assert before["own_forward"] == after["own_forward"] == []
    assert repr(before["options"]) == repr(after["options"])
    assert before["patches"] == after["patches"] and before["object_patches"] == after["object_patches"]
    assert repr(before["wrappers"]) == repr(after["wrappers"])


def eps_loss(model, latents, conditioning, samples: int = 8, seed: int = 123) -> float:
    """Mean epsilon-prediction error of `model` on fixed noisy versions of the dataset, through
    ComfyUI's sampling path (the same for every model compared)."""
    items = [(latent["samples"][i], cond[0][0]) for latent, cond in zip(latents, conditioning)
             for i in range(latent["samples"].shape[0])]
    generator = torch.Generator().manual_seed(seed)
    sigmas = model.get_model_object("model_sampling").sigmas
    total = 0.0
    for n in range(samples):
        latent, context = items[n % len(items)]
        clean = model.model.process_latent_in(latent[None].clone())
        noise = torch.randn(clean.shape, generator=generator)
        sigma = float(sigmas[int(torch.randint(100, 900, (1,), generator=generator))])
        x = clean + sigma * noise
        denoised = models.unet_forward(model, x, sigma, context.clone())
        total += (((x - denoised) / sigma - noise) ** 2).mean().item()
    return total / samples


def weights_of(scheduled) -> dict:
    return {k: v.detach().cpu().clone() for k, v in scheduled.network.state_dict().items()}
