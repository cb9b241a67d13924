"""Categorical predictive: a mixture over posterior samples of class probabilities."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from bdl._validation import as_float, check_finite, check_simplex, is_concrete
from bdl.predictive._base import Predictive, broadcast_shape
from bdl.predictive._mixture import normalise_weights, pick_components


@dataclasses.dataclass(frozen=True, repr=False, eq=False)
class Categorical(Predictive):
    """Class probabilities per posterior sample.

    Attributes:
      sample_probs: ``[S, *batch_shape, C]``, each ``[..., :]`` on the simplex.
      weights: posterior weights ``[S, *batch_shape]`` summing to one over axis 0.

    The math is jitted per method, so eager calls compile once per shape.
    """

    sample_probs: jax.Array
    weights: jax.Array

    @classmethod
    def create(cls, probs=None, *, logits=None, weights=None) -> Categorical:
        if (probs is None) == (logits is None):
            raise ValueError("Give exactly one of `probs` or `logits` ([S, *batch_shape, C]).")
        name, x = ("probs", probs) if logits is None else ("logits", logits)
        x = as_float(x)
        if x.ndim < 2:
            raise ValueError(
                f"`{name}` needs a sample axis and a class axis: [S, *batch_shape, C]; "
                f"got shape {x.shape}."
            )
        if logits is None:
            check_simplex("probs", x, axis=-1)
        else:
            check_finite("logits", x)
            x = jax.nn.softmax(x, axis=-1)
        return cls(x, normalise_weights(weights, x.shape[:-1], x.dtype))

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

    @jax.jit
    def probs(self) -> jax.Array:
        return jnp.sum(self.weights[..., None] * self.sample_probs, axis=0)

    def mode(self) -> jax.Array:
        """Most probable class under ``probs()``, shape ``batch_shape``."""
        return jnp.argmax(self.probs(), axis=-1)

    def _log_prob(self, y) -> jax.Array:
        """Log predictive probability of integer labels ``y`` in [0, C); ``y`` broadcasts
        against ``batch_shape``."""
        y = jnp.asarray(y)
        if not jnp.issubdtype(y.dtype, jnp.integer):
            raise ValueError(f"`y` must hold integer class labels; got dtype {y.dtype}.")
        if is_concrete(y) and np.any((np.asarray(y) < 0) | (np.asarray(y) >= self.num_classes)):
            raise ValueError(f"`y` must hold class labels in [0, {self.num_classes}).")
        return self._label_log_prob(y)

    @jax.jit
    def _label_log_prob(self, y):
        shape = broadcast_shape(y, self.batch_shape, "y", "the batch shape")
        logp = jnp.broadcast_to(jnp.log(self.probs()), (*shape, self.num_classes))
        return jnp.take_along_axis(logp, jnp.broadcast_to(y, shape)[..., None], axis=-1)[..., 0]

    @functools.partial(jax.jit, static_argnames="n")
    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """``n`` labels ``[n, *batch_shape]``: a posterior sample per draw (shared by the batch
        where the weights agree), then a label from its probabilities."""
        k_comp, k_label = jax.random.split(key)
        comp = pick_components(k_comp, self.weights, n)
        probs = jnp.take_along_axis(self.sample_probs, comp[..., None], axis=0)
        return jax.random.categorical(k_label, jnp.log(probs), axis=-1)

    @jax.jit
    def entropy(self) -> jax.Array:
        return _entropy(self.probs())

    @jax.jit
    def expected_entropy(self) -> jax.Array:
        return jnp.sum(self.weights * _entropy(self.sample_probs), axis=0)


def _entropy(p: jax.Array) -> jax.Array:
    """Entropy over the last axis, with 0 log 0 = 0 (and a finite gradient there)."""
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)


jax.tree_util.register_dataclass(
    Categorical, data_fields=["sample_probs", "weights"], meta_fields=[]
)
