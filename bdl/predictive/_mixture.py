"""Gaussian mixture predictive: the output of every regression posterior."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp, ndtr

from bdl._validation import (
    as_float,
    check_finite,
    check_positive,
    check_probability,
    check_simplex,
)
from bdl.predictive._base import Predictive, broadcast_eval, expand_to

_LOG_SQRT_2PI = 0.5 * jnp.log(2.0 * jnp.pi)
_BISECTION_STEPS = 64


@dataclasses.dataclass(frozen=True, repr=False)
class GaussianMixture(Predictive):
    """Mixture over a leading sample axis of Gaussians.

    Attributes:
      loc: component means, ``[S, *batch_shape]``.
      scale: component standard deviations (> 0), ``[S, *batch_shape]``.
      weights: mixture weights, ``[S, *batch_shape]``, summing to one over axis 0.
    """

    loc: jax.Array
    scale: jax.Array
    weights: jax.Array

    @classmethod
    def create(cls, loc, scale, weights=None) -> GaussianMixture:
        loc, scale = as_float(loc), as_float(scale)
        if loc.ndim == 0:
            raise ValueError("`loc` needs a leading sample axis: shape [S, *batch_shape].")
        check_finite("loc", loc)
        check_positive("scale", scale)
        try:
            loc, scale = jnp.broadcast_arrays(loc, scale)
        except ValueError:
            raise ValueError(
                f"`scale` of shape {jnp.shape(scale)} does not broadcast against `loc` of "
                f"shape {loc.shape}."
            ) from None
        return cls(loc, scale, _normalise_weights(weights, loc.shape))

    # structure
    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.loc.shape[1:])

    @property
    def num_samples(self) -> int:
        return int(self.loc.shape[0])

    # moments
    def mean(self) -> jax.Array:
        return jnp.sum(self.weights * self.loc, axis=0)

    def aleatoric_variance(self) -> jax.Array:
        return jnp.sum(self.weights * self.scale**2, axis=0)

    def epistemic_variance(self) -> jax.Array:
        return jnp.sum(self.weights * (self.loc - self.mean()) ** 2, axis=0)

    # distribution
    def log_prob(self, y) -> jax.Array:
        y, shape = broadcast_eval(y, self.batch_shape, "y")
        loc, scale, logw = self._expanded(shape)
        z = (y - loc) / scale
        comp = -0.5 * z**2 - jnp.log(scale) - _LOG_SQRT_2PI
        return logsumexp(comp + logw, axis=0)

    def cdf(self, t) -> jax.Array:
        t, shape = broadcast_eval(t, self.batch_shape, "t")
        return self._cdf(t, shape)

    def quantile(self, q) -> jax.Array:
        """Exact mixture quantile: vectorised bisection on the mixture CDF.

        The bracket spans every component's +-12 sd, so it holds all quantiles representable
        in float32; 64 halvings reach the float resolution of the bracket.
        ``q = 0`` and ``q = 1`` return -inf and +inf.
        """
        check_probability("q", q)
        q, shape = broadcast_eval(q, self.batch_shape, "q")
        q = jnp.broadcast_to(q, shape)
        lo = jnp.broadcast_to(jnp.min(self.loc - 12.0 * self.scale, axis=0), shape)
        hi = jnp.broadcast_to(jnp.max(self.loc + 12.0 * self.scale, axis=0), shape)

        def halve(_, bracket):
            lo, hi = bracket
            mid = 0.5 * (lo + hi)
            below = self._cdf(mid, shape) < q
            return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

        lo, hi = jax.lax.fori_loop(0, _BISECTION_STEPS, halve, (lo, hi))
        x = 0.5 * (lo + hi)
        x = jnp.where(q <= 0.0, -jnp.inf, x)
        return jnp.where(q >= 1.0, jnp.inf, x)

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        k_comp, k_noise = jax.random.split(key)
        logits = jnp.log(self.weights)  # [S, *B]
        comp = jax.random.categorical(k_comp, logits, axis=0, shape=(n, *self.batch_shape))
        loc = jnp.take_along_axis(self.loc[None], comp[:, None], axis=1)[:, 0]
        scale = jnp.take_along_axis(self.scale[None], comp[:, None], axis=1)[:, 0]
        return loc + scale * jax.random.normal(k_noise, loc.shape, loc.dtype)

    def entropy(self) -> jax.Array:
        if self.num_samples != 1:
            raise NotImplementedError(
                "The entropy of a Gaussian mixture has no closed form; it is defined here for "
                "a single Gaussian only (use the sample estimate -mean(log_prob(sample)))."
            )
        return 0.5 + _LOG_SQRT_2PI + jnp.log(self.scale[0])

    # helpers
    def _expanded(self, shape):
        n = len(self.batch_shape)
        return (
            expand_to(self.loc, shape, n),
            expand_to(self.scale, shape, n),
            expand_to(jnp.log(self.weights), shape, n),
        )

    def _cdf(self, t, shape):
        n = len(self.batch_shape)
        loc, scale = expand_to(self.loc, shape, n), expand_to(self.scale, shape, n)
        return jnp.sum(expand_to(self.weights, shape, n) * ndtr((t - loc) / scale), axis=0)


def _normalise_weights(weights, shape) -> jax.Array:
    """Weights broadcast to ``shape`` = ``[S, *batch]``; uniform when ``None``."""
    if weights is None:
        return jnp.full(shape, 1.0 / shape[0], dtype=jnp.result_type(float))
    w = as_float(weights)
    check_probability("weights", w)
    if w.ndim == 1:
        w = w.reshape(w.shape + (1,) * (len(shape) - 1))
    try:
        w = jnp.broadcast_to(w, shape)
    except ValueError:
        raise ValueError(
            f"`weights` of shape {jnp.shape(weights)} does not match the sample axis of shape "
            f"{shape}; give [S] or [S, *batch_shape]."
        ) from None
    check_simplex("weights", w, axis=0)
    return w


jax.tree_util.register_dataclass(
    GaussianMixture, data_fields=["loc", "scale", "weights"], meta_fields=[]
)
