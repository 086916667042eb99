"""Training A1111 hypernetworks: schedules, objective, the loop and resuming. Never imports ComfyUI."""
from .checkpointing import gradient_checkpointing
from .frozen_base import frozen, materialize_inference_tensors
from .gradient_clipping import CLIP_MODES
from .lr_schedule import ScheduleCursor, ScheduleError, parse_schedule
from .network_spec import DROPOUT_CHOICES, build_config, parse_dims
from .objective import DenoiserInversionTarget, EpsilonTarget, VelocityTarget
from .optimizers import OPTIMIZERS
from .resume import (OptimizerState, attach_optimizer_state, attached_optimizer_state, copy_for_training,
                     load_for_resume, read_optimizer_sidecar, save_with_optimizer_state)
from .settings import TrainingSettings
from .snapshots import snapshot_file_name, write_snapshot
from .trainer import (StepReport, TrainingCallbacks, TrainingData, TrainingDiverged, TrainingError, TrainingResult,
                      TrainingRun, check_plan, train)
from .training_patch import TrainingPatch

__all__ = [
    "CLIP_MODES", "DROPOUT_CHOICES", "DenoiserInversionTarget", "EpsilonTarget", "OPTIMIZERS", "OptimizerState",
    "ScheduleCursor", "ScheduleError", "StepReport", "TrainingCallbacks", "TrainingData", "TrainingDiverged",
    "TrainingError", "TrainingPatch", "TrainingResult", "TrainingRun", "TrainingSettings", "VelocityTarget",
    "attach_optimizer_state", "attached_optimizer_state", "build_config", "check_plan", "copy_for_training", "frozen",
    "gradient_checkpointing", "load_for_resume", "materialize_inference_tensors", "parse_dims", "parse_schedule",
    "read_optimizer_sidecar", "save_with_optimizer_state", "snapshot_file_name", "train", "write_snapshot",
]
