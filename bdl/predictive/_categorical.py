"""Categorical predictive: a mixture over posterior samples of class probabilities."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from bdl._validation import as_float, check_finite, check_simplex
from bdl.predictive._base import Predictive
from bdl.predictive._mixture import _normalise_weights


@dataclasses.dataclass(frozen=True, repr=False)
class Categorical(Predictive):
    """Class probabilities per posterior sample.

    Attributes:
      sample_probs: ``[S, *batch_shape, C]``, each ``[..., :]`` on the simplex.
      weights: posterior weights ``[S, *batch_shape]`` summing to one over axis 0.
    """

    sample_probs: jax.Array
    weights: jax.Array

    @classmethod
    def create(cls, probs=None, *, logits=None, weights=None) -> Categorical:
        if (probs is None) == (logits is None):
            raise ValueError("Give exactly one of `probs` or `logits` ([S, *batch_shape, C]).")
        if logits is not None:
            logits = as_float(logits)
            check_finite("logits", logits)
            probs = jax.nn.softmax(logits, axis=-1)
            name = "logits"
        else:
            probs = as_float(probs)
            check_simplex("probs", probs, axis=-1)
            name = "probs"
        if probs.ndim < 2:
            raise ValueError(
                f"`{name}` needs a sample axis and a class axis: [S, *batch_shape, C]; "
                f"got shape {probs.shape}."
            )
        return cls(probs, _normalise_weights(weights, probs.shape[:-1]))

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.sample_probs.shape[1:-1])

    @property
    def num_samples(self) -> int:
        return int(self.sample_probs.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.sample_probs.shape[-1])

    @property
    def is_classification(self) -> bool:
        return True

    def probs(self) -> jax.Array:
        return jnp.sum(self.weights[..., None] * self.sample_probs, axis=0)

    def mode(self) -> jax.Array:
        """Most probable class under ``probs()``, shape ``batch_shape``."""
        return jnp.argmax(self.probs(), axis=-1)

    def log_prob(self, y) -> jax.Array:
        """Log predictive probability of integer labels ``y`` (broadcast to ``batch_shape``)."""
        y = jnp.asarray(y)
        if not jnp.issubdtype(y.dtype, jnp.integer):
            raise ValueError(f"`y` must hold integer class labels; got dtype {y.dtype}.")
        logp = jnp.log(self.probs())
        y = jnp.broadcast_to(y, jnp.broadcast_shapes(y.shape, self.batch_shape))
        logp = jnp.broadcast_to(logp, y.shape + (self.num_classes,))
        return jnp.take_along_axis(logp, y[..., None], axis=-1)[..., 0]

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        return jax.random.categorical(
            key, jnp.log(self.probs()), axis=-1, shape=(n, *self.batch_shape)
        )

    def entropy(self) -> jax.Array:
        return _entropy(self.probs())

    def expected_entropy(self) -> jax.Array:
        return jnp.sum(self.weights * _entropy(self.sample_probs), axis=0)


def _entropy(p: jax.Array) -> jax.Array:
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)


jax.tree_util.register_dataclass(
    Categorical, data_fields=["sample_probs", "weights"], meta_fields=[]
)
