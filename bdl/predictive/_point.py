"""Point (Dirac) predictive: a point predictor such as "Tool A" of the route-choice example."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from bdl._validation import as_float, check_finite, check_probability
from bdl.predictive._base import Predictive, broadcast_eval


@dataclasses.dataclass(frozen=True, repr=False, eq=False)
class Point(Predictive):
    """A Dirac at ``values`` (shape ``batch_shape``).

    Its variance is zero, its CDF a step, its density infinite at the point and zero elsewhere,
    so ``log_prob`` is +inf / -inf (the NLL of a point predictor is honestly infinite).
    """

    values: jax.Array
    _batch_start = 0  # no sample axis: ``values`` is ``batch_shape``

    @classmethod
    def create(cls, values) -> Point:
        values = as_float(values)
        check_finite("values", values)
        return cls(values)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape)

    @property
    def num_samples(self) -> int:
        return 1

    def mean(self) -> jax.Array:
        return self.values

    def _affine(self, shift, scale) -> Point:
        return Point(shift + scale * self.values)

    def aleatoric_variance(self) -> jax.Array:
        return jnp.zeros_like(self.values)

    def epistemic_variance(self) -> jax.Array:
        return jnp.zeros_like(self.values)

    def _log_prob(self, y) -> jax.Array:
        y = broadcast_eval(y, self.batch_shape, "y")
        hit = y == jnp.broadcast_to(self.values, y.shape)
        return jnp.where(hit, jnp.inf, -jnp.inf).astype(y.dtype)

    def _cdf_of(self, t) -> jax.Array:
        t = broadcast_eval(t, self.batch_shape, "t")
        return (t >= jnp.broadcast_to(self.values, t.shape)).astype(t.dtype)

    def quantile(self, q) -> jax.Array:
        """``values`` for every ``q`` in [0, 1] (the support is the single point)."""
        check_probability("q", q)
        q = broadcast_eval(q, self.batch_shape, "q")
        return jnp.broadcast_to(self.values, q.shape)

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        del key
        return jnp.broadcast_to(self.values, (n, *self.batch_shape))


jax.tree_util.register_dataclass(Point, data_fields=["values"], meta_fields=[])
