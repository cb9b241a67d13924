"""Options shared by the methods that train networks by optimisation."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, ClassVar

import optax

from bdl._validation import check_positive
from bdl.priors import IsotropicGaussian, Prior
from bdl.training._convergence import default_optimizer

# the prior of a fit that names none: one object, so ``prior_given`` can tell it apart from an
# equal prior a user passed on purpose (equal priors still share compiled programs)
DEFAULT_PRIOR = IsotropicGaussian(1.0)


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """How a network is trained to (an approximation of) the MAP: the options of ``"map"``,
    composed (as the field ``train``) into every method with an optimisation stage.

    Attributes:
      epochs: passes over the data (full batch: optimiser steps); ``None`` (default) trains
        until converged (see ``bdl.training._convergence``), for at most ``max_epochs``, and
        warns with ``bdl.NotConvergedWarning`` when the cap ends the run.
      max_epochs: the cap of an ``epochs=None`` run; ``None`` = 20,000 optimiser steps.
      batch_size: minibatch size; ``None`` = full batch up to 2,048 examples, else 128.
      learning_rate: Adam's initial step size (ignored when ``optimizer`` is given).
      optimizer: any optax ``GradientTransformation``; default Adam at ``learning_rate``
        with ``reduce_on_plateau`` decay (10x after 200 steps without improvement).
      prior: prior over network parameters (default ``IsotropicGaussian(1.0)``).
      validation_fraction: share of the training data held out for early stopping.
      patience: stop after this many chunks without validation improvement.
      chunk_epochs: epochs per jitted chunk (progress/checkpoint granularity).
      progress: show a progress bar.
      checkpoint_dir: write/resume the training state there.
      init_params: start from these network parameters instead of a random initialisation.
    """

    epochs: int | None = None
    max_epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float = 1e-2
    optimizer: optax.GradientTransformation | None = None
    prior: Prior = DEFAULT_PRIOR
    validation_fraction: float = 0.0
    patience: int | None = None
    chunk_epochs: int | None = None
    progress: bool = False
    checkpoint_dir: str | os.PathLike | None = None
    init_params: Any = None

    composable: ClassVar[bool] = True  # bdl.fit routes flat keywords into it

    def __post_init__(self):
        if self.epochs is not None and int(self.epochs) < 1:
            raise ValueError(f"`epochs` must be >= 1 (or None: until converged); got {self.epochs}.")
        if self.max_epochs is not None and int(self.max_epochs) < 1:
            raise ValueError(f"`max_epochs` must be >= 1; got {self.max_epochs}.")
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

    @property
    def prior_given(self) -> bool:
        """Whether a prior was passed (rather than the default ``IsotropicGaussian(1.0)``)."""
        return self.prior is not DEFAULT_PRIOR

    def steps_per_epoch(self, num_data: int) -> int:
        """Optimiser steps per epoch on ``num_data`` training examples."""
        return max(1, num_data // self.resolved_batch_size(num_data))

    def resolved_optimizer(self, num_data: int = 1) -> optax.GradientTransformation:
        """``optimizer``, or the default Adam + reduce-on-plateau for ``num_data`` examples."""
        if self.optimizer is not None:
            return self.optimizer
        return default_optimizer(self.learning_rate, self.steps_per_epoch(num_data))
