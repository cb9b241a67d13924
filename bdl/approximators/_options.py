"""Options shared by the methods that train networks by optimisation."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import optax

from bdl._validation import check_positive
from bdl.priors import IsotropicGaussian, Prior


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """How a network is trained to (an approximation of) the MAP.

    Attributes:
      epochs: passes over the data (full batch: optimiser steps).
      batch_size: minibatch size; ``None`` = full batch up to 2,048 examples, else 128.
      learning_rate: Adam's step size (ignored when ``optimizer`` is given).
      optimizer: any optax ``GradientTransformation``; default ``optax.adam(learning_rate)``.
      prior: prior over network parameters (default ``IsotropicGaussian(1.0)``).
      validation_fraction: share of the training data held out for early stopping.
      patience: stop after this many chunks without validation improvement.
      chunk_epochs: epochs per jitted chunk (progress/checkpoint granularity).
      progress: show a progress bar.
      checkpoint_dir: write/resume the training state there.
      init_params: start from these network parameters instead of a random initialisation.
    """

    epochs: int = 500
    batch_size: int | None = None
    learning_rate: float = 1e-3
    optimizer: optax.GradientTransformation | None = None
    prior: Prior = dataclasses.field(default_factory=IsotropicGaussian)
    validation_fraction: float = 0.0
    patience: int | None = None
    chunk_epochs: int | None = None
    progress: bool = False
    checkpoint_dir: str | os.PathLike | None = None
    init_params: Any = None

    def __post_init__(self):
        if int(self.epochs) < 1:
            raise ValueError(f"`epochs` must be >= 1; got {self.epochs}.")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise ValueError(f"`batch_size` must be >= 1; got {self.batch_size}.")
        check_positive("learning_rate", self.learning_rate)
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(
                f"`validation_fraction` must lie in [0, 1); got {self.validation_fraction}."
            )

    def resolved_batch_size(self, num_data: int) -> int:
        if self.batch_size is not None:
            return min(int(self.batch_size), num_data)
        return num_data if num_data <= 2048 else 128

    def resolved_optimizer(self) -> optax.GradientTransformation:
        return self.optimizer if self.optimizer is not None else optax.adam(self.learning_rate)


def split_options(options: dict[str, Any], own: tuple[str, ...], method: str
                  ) -> tuple[TrainOptions, dict[str, Any]]:
    """Split ``options`` into ``TrainOptions`` and the method's own options ``own``;
    an unknown option raises a ``TypeError`` listing the known ones."""
    train_fields = {f.name for f in dataclasses.fields(TrainOptions)}
    unknown = set(options) - train_fields - set(own)
    if unknown:
        known = sorted(train_fields | set(own))
        raise TypeError(
            f"Unknown option(s) {sorted(unknown)} for method {method!r}; known: {known}."
        )
    train = TrainOptions(**{k: v for k, v in options.items() if k in train_fields})
    return train, {k: v for k, v in options.items() if k in own}
