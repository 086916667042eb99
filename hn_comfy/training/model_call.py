"""The ComfyUI side of training: noise schedule, parameterization and one model call per batch.

`ModelCall` runs the patched model the way ComfyUI's samplers do (conditioning encoded by the
model's own `extra_conds`, `BaseModel.apply_model` with the patcher's transformer options and
wrappers) and returns the model's *raw* output (epsilon or v), caught by a diffusion-model wrapper,
because the objective is defined in that parameterization. hn_core gets plain callables only.
In caption mode the conditioning changes from step to step: `prepare_step` encodes the prompts of
the step's images before its micro-batches run.
"""
from __future__ import annotations

import torch

import comfy.model_sampling
import comfy.patcher_extension
import comfy.sampler_helpers
import comfy.samplers

from ...hn_core.training import DenoiserInversionTarget, EpsilonTarget, TrainingError, TrainingPatch, VelocityTarget

WRAPPER_KEY = "hypernetwork_training"


def prediction_target(model_sampling):
    """The objective's target for this model's parameterization (exact forms for epsilon and v)."""
    kind = type(model_sampling)
    adds_noise_like_eps = kind.noise_scaling is comfy.model_sampling.EPS.noise_scaling
    if adds_noise_like_eps and kind.calculate_denoised is comfy.model_sampling.EPS.calculate_denoised:
        return EpsilonTarget()
    if adds_noise_like_eps and kind.calculate_denoised is comfy.model_sampling.V_PREDICTION.calculate_denoised:
        return VelocityTarget(float(model_sampling.sigma_data))
    return DenoiserInversionTarget(model_sampling.calculate_denoised)


def discrete_sigmas(model_sampling) -> torch.Tensor:
    sigmas = getattr(model_sampling, "sigmas", None)
    if not isinstance(sigmas, torch.Tensor) or sigmas.ndim != 1 or len(sigmas) < 2:
        raise TrainingError(f"this model's sampling ({type(model_sampling).__name__}) has no discrete noise "
                            "schedule to draw training timesteps from")
    return sigmas.detach().float().cpu().clone()


class ModelCall:
    """`(noisy, sigma, item indices) -> raw output` for a loaded, patched ModelPatcher."""

    def __init__(self, patcher, patch: TrainingPatch, latents: list[torch.Tensor], conditionings: list[list] | None,
                 step_prompts=None):
        """`conditionings`: one entry per item, fixed; or None with `step_prompts`, whose
        `entry(item, step)` gives an item's entry at a step (caption mode)."""
        self.model = patcher.model
        self.patch = patch
        self.device = patcher.load_device
        self.transformer_options = patcher.model_options.get("transformer_options", {})
        self.wrappers = comfy.patcher_extension.copy_nested_dicts(patcher.wrappers)
        sigmas = discrete_sigmas(patcher.get_model_object("model_sampling"))
        self.sample_sigmas = torch.cat([sigmas.flip(0), sigmas.new_zeros(1)]).to(self.device)
        self.latents, self.step_prompts = latents, step_prompts
        self.item_conds = self._encode_all(latents, conditionings) if conditionings is not None else [None] * len(latents)

    def prepare_step(self, step: int, batches: list[list[int]]) -> None:
        """Caption mode: encode this step's prompt for every item the step uses."""
        if self.step_prompts is None:
            return
        for index in sorted({index for batch in batches for index in batch}):
            self.item_conds[index] = self._encode(self.step_prompts.entry(index, step), self.latents[index])

    def _encode_all(self, latents, conditionings) -> list[dict]:
        # One encoding per (conditioning, latent size): a shared prompt is encoded once per size.
        cache: dict[tuple, dict] = {}
        encoded = []
        for latent, entry in zip(latents, conditionings):
            key = (id(entry), tuple(latent.shape))
            if key not in cache:
                cache[key] = self._encode(entry, latent)
            encoded.append(cache[key])
        return encoded

    def _encode(self, entry: list, latent: torch.Tensor) -> dict:
        conds = comfy.sampler_helpers.convert_cond([entry])
        like = latent[None].to(self.device)
        conds = comfy.samplers.encode_model_conds(self.model.extra_conds, conds, like, self.device, "positive",
                                                  latent_image=like)
        return {name: cond.process_cond(batch_size=1, area=None) for name, cond in conds[0]["model_conds"].items()}

    def __call__(self, noisy: torch.Tensor, sigma: torch.Tensor, indices: list[int]) -> torch.Tensor:
        conds = comfy.samplers.cond_cat([self.item_conds[i] for i in indices])
        captured = []

        def capture_raw_output(executor, *args, **kwargs):
            context = args[2] if len(args) > 2 else kwargs.get("context")
            self.patch.share_context(context)
            output = executor(*args, **kwargs)
            captured.append(output)
            return output

        options = comfy.patcher_extension.copy_nested_dicts(self.transformer_options)
        wrappers = comfy.patcher_extension.merge_nested_dicts(options.get("wrappers", {}), self.wrappers)
        wrappers.setdefault(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, {})[WRAPPER_KEY] = [capture_raw_output]
        options.update({"wrappers": wrappers, "sigmas": sigma, "sample_sigmas": self.sample_sigmas,
                        "cond_or_uncond": [0], "uuids": [None]})
        self.model.apply_model(noisy, sigma, transformer_options=options, **conds)
        if not captured:
            raise TrainingError(f"{type(self.model.diffusion_model).__name__} does not expose its raw prediction "
                                "to ComfyUI's diffusion-model wrappers, so it cannot be trained here")
        return captured[-1]
