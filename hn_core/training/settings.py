"""How to train: everything the loop needs besides the network and the data."""
from __future__ import annotations

from dataclasses import dataclass

from .gradient_clipping import CLIP_MODES
from .optimizers import OPTIMIZERS


@dataclass(frozen=True)
class TrainingSettings:
    """A1111's training options. `max_steps` is the step count to reach (not the steps to add):
    a network resumed at step 1000 with max_steps 1500 trains 500 more steps."""

    max_steps: int
    learning_rate: str = "0.00001"  # A1111 schedule syntax, see lr_schedule
    batch_size: int = 1
    gradient_accumulation: int = 1
    optimizer: str = "AdamW"
    weight_decay: float = 0.01
    clip_mode: str = "off"  # off | value | norm
    clip_value: str = "0.1"  # schedule syntax too
    seed: int = 0
    snapshot_every: int = 0  # 0: no snapshots
    loss_scaling: bool = False  # fp16 training: scale the loss; gradients are unscaled before clipping

    def __post_init__(self):
        for name in ("max_steps", "batch_size", "gradient_accumulation"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if isinstance(self.snapshot_every, bool) or not isinstance(self.snapshot_every, int) or self.snapshot_every < 0:
            raise ValueError(f"snapshot_every must be a whole number >= 0, got {self.snapshot_every!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r} (choose one of {', '.join(OPTIMIZERS)})")
        if self.clip_mode not in CLIP_MODES:
            raise ValueError(f"unknown gradient clipping mode {self.clip_mode!r} (choose one of {', '.join(CLIP_MODES)})")
        if not (self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
