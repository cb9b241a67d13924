"""What a likelihood provides to every approximator.

A likelihood turns network outputs into (a) the log-likelihood of observed targets, for
training, and (b) a ``Predictive``, for prediction. Some likelihoods carry parameters of their
own (the homoscedastic noise scale), held in a small pytree ``lik_params`` next to the network
parameters; they are fitted with them (MAP) or treated as hyper-parameters (Laplace).

Shapes: network outputs ``f`` are ``[N, out]``; targets ``y`` are ``[N]`` (scalar regression,
class labels) or ``[N, D]`` (multi-output regression). A posterior over networks gives outputs
``[S, N, out]`` and one ``Predictive`` with sample axis S (a mixture).
"""

from __future__ import annotations

import abc
from typing import Any

import jax

from bdl.predictive import Predictive

LikParams = Any


class Likelihood(abc.ABC):
    """Abstract likelihood. Concrete ones: ``Gaussian``, ``Categorical``."""

    #: "regression" or "classification"
    task: str = "regression"

    def init_params(self) -> LikParams:
        """Initial likelihood parameters (an empty dict when there are none)."""
        return {}

    @abc.abstractmethod
    def output_size(self, target_dim: int) -> int | None:
        """Network output size this likelihood needs for targets with ``target_dim`` columns
        (``None``: any size >= 2, as for class logits)."""

    @abc.abstractmethod
    def log_likelihood(self, f: jax.Array, y: jax.Array, lik_params: LikParams) -> jax.Array:
        """Per-example log-likelihood ``[N]`` of targets ``y`` given outputs ``f`` ``[N, out]``."""

    @abc.abstractmethod
    def predictive(self, f: jax.Array, lik_params: LikParams) -> Predictive:
        """Predictive from outputs ``f`` ``[S, N, out]`` (S posterior samples, equally weighted
        unless the caller reweights) with ``lik_params`` batched over S on their leading axis."""

    @abc.abstractmethod
    def validate_targets(self, y: jax.Array, out_size: int) -> None:
        """Raise a ``ValueError`` naming ``y`` when targets do not fit this likelihood."""

    # Likelihoods are configuration: equal settings are equal (and hash alike), so programs
    # compiled for one are reused for an equal one (see ``bdl._cache``).
    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(vars(self).items()))))
