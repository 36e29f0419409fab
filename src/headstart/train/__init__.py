"""The shared training core: loop (AMP, accumulation, clipping, schedules, NaN guard), atomic
checkpoints with resume, metrics, device choice and seeding."""
from .checkpoint import CheckpointError, finalize, fingerprint, load_checkpoint, save_checkpoint
from .device import describe_device, pick_device, set_tf32
from .loop import (
    NonFiniteLossError,
    TrainConfig,
    batch_counts,
    default_param_groups,
    deterministic,
    lr_at,
    train,
)
from .metrics import accuracy, bits_per_byte, bits_per_token, nats_to_bits, rows_to_frame, sequence_accuracy, tidy_rows
from .seed import rng_state, seed_everything, set_rng_state

__all__ = [
    "CheckpointError",
    "NonFiniteLossError",
    "TrainConfig",
    "accuracy",
    "batch_counts",
    "bits_per_byte",
    "bits_per_token",
    "default_param_groups",
    "describe_device",
    "deterministic",
    "finalize",
    "fingerprint",
    "load_checkpoint",
    "lr_at",
    "nats_to_bits",
    "pick_device",
    "rng_state",
    "rows_to_frame",
    "save_checkpoint",
    "seed_everything",
    "sequence_accuracy",
    "set_rng_state",
    "set_tf32",
    "tidy_rows",
    "train",
]
