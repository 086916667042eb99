"""The training loop, with A1111's semantics and without its known faults.

- A step is one optimizer update: `gradient_accumulation` micro-batches of `batch_size` items;
  the loss reported for it is the mean over the micro-batches.
- The learning rate (and clip value) follow A1111's schedule syntax; training stops when the
  schedule runs out, even before `max_steps`.
- Clipping sees the real gradients: with loss scaling they are unscaled first.
- Each step's randomness derives from (seed, step) (see batch_plan), so resuming is exact.
- Errors and cancellation propagate; the network is left in eval mode without gradients.

The caller owns everything model-specific: it passes the clean latents, the noise schedule and
plain callables that add noise and run the (patched, frozen) model. Nothing here imports ComfyUI.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from ..network.hypernetwork import Hypernetwork
from .batch_plan import bucketed_micro_batches, derived_seed, seeded_global_rng, step_generator
from .divergence import divergence_message, weights_are_finite
from .gradient_clipping import clip_gradients
from .lr_schedule import ScheduleCursor, ScheduleItem, last_trained_step, parse_schedule
from .objective import per_sample_mse
from .optimizers import build_optimizer
from .preview_pause import paused_for_preview
from .preview_plan import is_preview_step
from .resume import OptimizerState
from .settings import TrainingSettings

logger = logging.getLogger(__name__)

Tensor = torch.Tensor


class TrainingError(ValueError):
    """The inputs cannot be trained on; the message says why and what to change."""


class TrainingDiverged(TrainingError):
    """A loss or weight became NaN/inf at `step`; nothing of that step was kept."""

    def __init__(self, step: int, what: str):
        self.step = step
        super().__init__(divergence_message(step, what))


@dataclass
class TrainingData:
    latents: Sequence[Tensor]  # one clean latent per item, [C, H, W], as the model sees them
    sigmas: Tensor  # the model's discrete noise schedule: one sigma per timestep
    noise_scaling: Callable[[Tensor, Tensor, Tensor], Tensor]  # (sigma [B], noise, clean) -> noisy
    predict: Callable[[Tensor, Tensor, list[int]], Tensor]  # (noisy, sigma [B], item indices) -> raw output
    target: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]  # (clean, noise, sigma, noisy) -> target
    # Called once per step before its micro-batches: (step, micro-batches) -> None; e.g. to encode
    # the prompts this step draws (captions with templates, shuffled or dropped tags).
    prepare_step: Callable[[int, list[list[int]]], None] | None = None


@dataclass(frozen=True)
class StepReport:
    step: int  # steps done, counting earlier training
    last_step: int  # where this run will stop unless cancelled
    loss: float
    learning_rate: float


def _nothing(*_args) -> None:
    return None


@dataclass
class TrainingCallbacks:
    check_cancel: Callable[[], None] = _nothing  # raises to stop; called before every micro-batch
    on_step: Callable[[StepReport], None] = _nothing
    on_snapshot: Callable[[Hypernetwork, OptimizerState], None] | None = None
    # Draws previews every `preview_every` steps and after the last one, with the network paused
    # (eval mode, no grad, global RNG restored after; see preview_pause). Must not change weights.
    on_preview: Callable[[Hypernetwork, StepReport], None] | None = None
    preview_every: int = 0


@dataclass
class TrainingResult:
    losses: list[float] = field(default_factory=list)  # one per step of this run
    optimizer_state: OptimizerState | None = None
    schedule_ended: bool = False  # stopped before max_steps because the schedule ran out


def check_plan(settings: TrainingSettings, start_step: int) -> list[ScheduleItem]:
    """Raise TrainingError / ScheduleError unless training can go on from `start_step`; returns the
    learning-rate items still to run. Cheap, so callers can check before loading any model."""
    if settings.max_steps <= start_step:
        raise TrainingError(f"steps ({settings.max_steps}) must be greater than the {start_step} steps the "
                            "hypernetwork already has: steps is the total to reach")
    if settings.clip_mode != "off":
        parse_schedule(settings.clip_value, settings.max_steps, start_step, "gradient clip")
    return parse_schedule(settings.learning_rate, settings.max_steps, start_step, "learning rate")


class TrainingRun:
    """One training session, one optimizer step per `step()` call; `train()` runs it to the end.

    Use it as a context manager: inside, the network is in train mode with gradients on; on the
    way out (normally, on error or on cancel) it is back in eval mode without gradients.
    The network must already sit on the training device with fp32 weights, and be a copy the
    caller owns: its weights and `info.step` change.
    """

    def __init__(self, network: Hypernetwork, data: TrainingData, settings: TrainingSettings,
                 callbacks: TrainingCallbacks | None = None, resume_from: OptimizerState | None = None):
        start = network.info.step
        lr_items = check_plan(settings, start)
        if not data.latents:
            raise TrainingError("no training images")
        self.network, self.data, self.settings = network, data, settings
        self.callbacks = callbacks or TrainingCallbacks()
        self.learning_rate = ScheduleCursor(lr_items)
        self.clip_value = (ScheduleCursor.parse(settings.clip_value, settings.max_steps, start, "gradient clip")
                           if settings.clip_mode != "off" else None)
        self.last_step = last_trained_step(lr_items, start, settings.max_steps)
        self.device = next(network.parameters()).device
        self.optimizer = build_optimizer(settings.optimizer, network, self.learning_rate.value,
                                         settings.weight_decay, resume_from)
        self.scaler = torch.amp.GradScaler(self.device.type) if settings.loss_scaling else None
        self.sigmas = data.sigmas.detach().float().cpu()
        self.schedule_ended = False

    def __enter__(self) -> "TrainingRun":
        logger.info("training hypernetwork %s from step %d to %d (%d images, batch %d x %d, %s)",
                    self.network.info.name or "(unnamed)", self.network.info.step, self.last_step,
                    len(self.data.latents), self.settings.batch_size, self.settings.gradient_accumulation,
                    self.settings.optimizer)
        self.network.train()  # dropout (if the structure has any) is on only while training
        self.network.requires_grad_(True)
        return self

    def __exit__(self, *exc_info) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.network.eval()
        self.network.requires_grad_(False)

    def step(self) -> float | None:
        """Run the next optimizer step and return its loss; None once training is over."""
        step = self.network.info.step
        if step >= self.settings.max_steps or self.schedule_ended:
            return None
        rate = self.learning_rate.advance(step)
        if self.learning_rate.finished:
            self.schedule_ended = True
            logger.info("learning-rate schedule ended at step %d", step)
            return None
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        limit = self.clip_value.advance(step) if self.clip_value is not None else 0.0
        loss = _one_step(self.network, self.data, self.settings, self.optimizer, self.scaler, self.sigmas,
                         self.device, step, limit, self.callbacks)
        self.network.info.step = step + 1
        report = StepReport(step + 1, self.last_step, loss, rate)
        self.callbacks.on_step(report)
        if self.callbacks.on_preview is not None and is_preview_step(step + 1, self.callbacks.preview_every,
                                                                     self.last_step):
            with paused_for_preview(self.network, self.device):
                self.callbacks.on_preview(self.network, report)
        every = self.settings.snapshot_every
        if self.callbacks.on_snapshot is not None and every and (step + 1) % every == 0:
            self.callbacks.on_snapshot(self.network, self.optimizer_state())
        return loss

    def optimizer_state(self) -> OptimizerState:
        return OptimizerState(self.settings.optimizer, self.optimizer.state_dict())


def train(network: Hypernetwork, data: TrainingData, settings: TrainingSettings,
          callbacks: TrainingCallbacks | None = None, resume_from: OptimizerState | None = None) -> TrainingResult:
    """Train `network` in place from `network.info.step` up to `settings.max_steps` (see TrainingRun)."""
    result = TrainingResult()
    with TrainingRun(network, data, settings, callbacks, resume_from) as run:
        while (loss := run.step()) is not None:
            result.losses.append(loss)
        result.optimizer_state = run.optimizer_state()
        result.schedule_ended = run.schedule_ended
    return result


def _one_step(network, data: TrainingData, settings: TrainingSettings, optimizer, scaler, sigmas: Tensor,
              device: torch.device, step: int, clip_limit: float, callbacks: TrainingCallbacks) -> float:
    """One optimizer update; returns the mean loss over its micro-batches."""
    # Latents of one size form a bucket; a micro-batch never mixes buckets.
    batches = bucketed_micro_batches(settings.seed, step, [tuple(latent.shape) for latent in data.latents],
                                     settings.batch_size, settings.gradient_accumulation)
    if data.prepare_step is not None:
        data.prepare_step(step, batches)
    generator = step_generator(settings.seed, step, "noise")
    total = 0.0
    with seeded_global_rng(derived_seed(settings.seed, "dropout", step), device):
        for indices in batches:
            callbacks.check_cancel()
            loss = _micro_batch_loss(data, indices, generator, sigmas, device)
            scaled = loss / len(batches)
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingDiverged(step + 1, f"the loss became {value}")
            total += value
    if scaler is not None:
        scaler.unscale_(optimizer)
    clip_gradients(network.parameters(), settings.clip_mode, clip_limit)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if not weights_are_finite(network.parameters()):
        raise TrainingDiverged(step + 1, "the optimizer's update made weights NaN or infinite")
    return total / len(batches)


def _micro_batch_loss(data: TrainingData, indices: list[int], generator: torch.Generator,
                      sigmas: Tensor, device: torch.device) -> Tensor:
    """Mean per-sample MSE over one micro-batch. Items of different sizes run as separate batches."""
    # Draw every sample's timestep and noise first, in index order, so grouping changes nothing.
    draws = []
    for index in indices:
        clean = data.latents[index]
        timestep = torch.randint(0, len(sigmas), (1,), generator=generator)
        noise = torch.randn(tuple(clean.shape), generator=generator)
        draws.append((index, clean, sigmas[timestep], noise))
    groups: dict[tuple, list] = {}
    for draw in draws:
        groups.setdefault(tuple(draw[1].shape), []).append(draw)
    losses = []
    for group in groups.values():
        clean = torch.stack([d[1] for d in group]).to(device=device, dtype=torch.float32)
        sigma = torch.cat([d[2] for d in group]).to(device)
        noise = torch.stack([d[3] for d in group]).to(device)
        noisy = data.noise_scaling(sigma, noise, clean)
        prediction = data.predict(noisy, sigma, [d[0] for d in group])
        losses.append(per_sample_mse(prediction, data.target(clean, noise, sigma, noisy)))
    return torch.cat(losses).mean()
