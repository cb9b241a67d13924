"""Empirical predictive from raw predictive draws."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from bdl._validation import as_float, check_finite, check_probability
from bdl.predictive._base import Predictive, broadcast_eval, expand_to

_LOG_SQRT_2PI = 0.5 * jnp.log(2.0 * jnp.pi)


@dataclasses.dataclass(frozen=True, repr=False, eq=False)
class Samples(Predictive):
    """Equally weighted draws ``samples`` of shape ``[N, *batch_shape]``.

    ``cdf`` and ``quantile`` are the empirical ones (quantile with linear interpolation, as
    ``numpy.quantile``); ``log_prob`` is a Gaussian kernel density estimate with Silverman's
    bandwidth (as scoringrules' ensemble log score). Draws carry no split into aleatoric and
    epistemic parts, so those two methods are not defined. The math is jitted per method, so
    eager calls compile once per shape.
    """

    samples: jax.Array

    @classmethod
    def create(cls, samples) -> Samples:
        samples = as_float(samples)
        if samples.ndim == 0 or samples.shape[0] < 2:
            raise ValueError("`samples` needs a leading axis of at least 2 draws: [N, *batch].")
        check_finite("samples", samples)
        return cls(samples)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.samples.shape[1:])

    def _affine(self, shift, scale) -> Samples:
        return Samples(shift[None] + scale[None] * self.samples)

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[0])

    @jax.jit
    def mean(self) -> jax.Array:
        return jnp.mean(self.samples, axis=0)

    @jax.jit
    def variance(self) -> jax.Array:
        return jnp.var(self.samples, axis=0)

    @jax.jit
    def _log_prob(self, y) -> jax.Array:
        y = broadcast_eval(y, self.batch_shape, "y")
        n = self.num_samples
        std = jnp.std(self.samples, axis=0, ddof=1)
        bandwidth = jnp.maximum(1.06 * std * n ** (-0.2), 1e-6 * (1.0 + jnp.abs(self.mean())))
        x = expand_to(self.samples, y.shape, len(self.batch_shape))
        bandwidth = expand_to(bandwidth[None], y.shape, len(self.batch_shape))
        z = (y[None] - x) / bandwidth
        comp = -0.5 * z**2 - jnp.log(bandwidth) - _LOG_SQRT_2PI
        return jax.scipy.special.logsumexp(comp, axis=0) - jnp.log(n)

    @jax.jit
    def _cdf_of(self, t) -> jax.Array:
        t = broadcast_eval(t, self.batch_shape, "t")
        x = expand_to(self.samples, t.shape, len(self.batch_shape))
        return jnp.mean((x <= t[None]).astype(t.dtype), axis=0)

    def quantile(self, q) -> jax.Array:
        check_probability("q", q)
        return self._quantile(q)

    @jax.jit
    def _quantile(self, q):
        q = broadcast_eval(q, self.batch_shape, "q")
        n = self.num_samples
        ordered = jnp.sort(self.samples, axis=0)
        ordered = jnp.broadcast_to(
            expand_to(ordered, q.shape, len(self.batch_shape)), (n, *q.shape)
        )
        pos = q * (n - 1)
        below = jnp.clip(jnp.floor(pos), 0, n - 1).astype(jnp.int32)
        above = jnp.minimum(below + 1, n - 1)
        lo = jnp.take_along_axis(ordered, below[None], axis=0)[0]
        hi = jnp.take_along_axis(ordered, above[None], axis=0)[0]
        return lo + (pos - below) * (hi - lo)

    @functools.partial(jax.jit, static_argnames="n")
    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """``n`` of the stored draws, resampled with replacement; each keeps its whole batch."""
        return self.samples[jax.random.randint(key, (n,), 0, self.num_samples)]


jax.tree_util.register_dataclass(Samples, data_fields=["samples"], meta_fields=[])
