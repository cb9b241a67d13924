"""Training core: data checks, the log-joint objective, jitted scan epochs, the host loop."""

from bdl.training._data import Batch, as_key, check_inputs, prepare_data, split_validation
from bdl.training._loop import (
    ChunkLog,
    TrainState,
    build_chunk,
    build_epoch,
    init_state,
    train,
)
from bdl.training._objective import log_joint_loss, mean_nll

__all__ = [
    "Batch",
    "ChunkLog",
    "TrainState",
    "as_key",
    "build_chunk",
    "build_epoch",
    "check_inputs",
    "init_state",
    "log_joint_loss",
    "mean_nll",
    "prepare_data",
    "split_validation",
    "train",
]
