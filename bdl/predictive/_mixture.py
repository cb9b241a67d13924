"""Gaussian mixture predictive: the output of every regression posterior."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp, ndtr

from bdl._validation import (
    as_float,
    check_finite,
    check_positive,
    check_probability,
    check_simplex,
)
from bdl.predictive._base import Predictive, broadcast_eval, broadcast_shape, expand_to

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)  # a Python float: exact in float64 too
_BISECTION_STEPS = 64


@dataclasses.dataclass(frozen=True, repr=False, eq=False)
class GaussianMixture(Predictive):
    """Mixture over a leading sample axis of Gaussians.

    Attributes:
      loc: component means, ``[S, *batch_shape]``.
      scale: component standard deviations (> 0), ``[S, *batch_shape]``: the whole spread of
        each component, ``sqrt(noise^2 + loc_var)``.
      weights: mixture weights, ``[S, *batch_shape]``, summing to one over axis 0.
      loc_var: the part of each component's variance that comes from an uncertain mean
        (epistemic, e.g. ``J Sigma J^T`` of a linearised predictive), ``[S, *batch_shape]``;
        zeros for plain Gaussian components.
    """

    loc: jax.Array
    scale: jax.Array
    weights: jax.Array
    loc_var: jax.Array

    @classmethod
    def create(cls, loc, scale, weights=None, *, loc_var=None) -> GaussianMixture:
        """``loc`` is ``[S, *batch_shape]``; ``scale`` (the noise sd) and ``loc_var`` (the
        variance of each mean, default 0) broadcast to it (scalars are fine)."""
        loc, scale = as_float(loc), as_float(scale)
        if loc.ndim == 0:
            raise ValueError("`loc` needs a leading sample axis: shape [S, *batch_shape].")
        check_finite("loc", loc)
        check_positive("scale", scale)
        if broadcast_shape(scale, loc.shape, "scale", "`loc`") != loc.shape:
            raise ValueError(
                f"`scale` of shape {scale.shape} must broadcast to `loc`'s {loc.shape}."
            )
        scale = jnp.broadcast_to(scale, loc.shape).astype(loc.dtype)
        if loc_var is None:
            loc_var = jnp.zeros_like(loc)
        else:
            loc_var = as_float(loc_var)
            check_finite("loc_var", loc_var)
            if broadcast_shape(loc_var, loc.shape, "loc_var", "`loc`") != loc.shape:
                raise ValueError(
                    f"`loc_var` of shape {loc_var.shape} must broadcast to `loc`'s {loc.shape}."
                )
            loc_var = jnp.broadcast_to(jnp.maximum(loc_var, 0.0), loc.shape).astype(loc.dtype)
            scale = jnp.sqrt(scale**2 + loc_var)
        return cls(loc, scale, normalise_weights(weights, loc.shape, loc.dtype), loc_var)

    # structure
    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.loc.shape[1:])

    @property
    def num_samples(self) -> int:
        return int(self.loc.shape[0])

    def _affine(self, shift, scale) -> GaussianMixture:
        return GaussianMixture(shift[None] + scale[None] * self.loc, scale[None] * self.scale,
                               self.weights, scale[None] ** 2 * self.loc_var)

    # moments (the math is jitted here so eager calls compile once per shape, not per op)
    @jax.jit
    def mean(self) -> jax.Array:
        return jnp.sum(self.weights * self.loc, axis=0)

    @jax.jit
    def aleatoric_variance(self) -> jax.Array:
        return jnp.sum(self.weights * jnp.maximum(self.scale**2 - self.loc_var, 0.0), axis=0)

    @jax.jit
    def epistemic_variance(self) -> jax.Array:
        spread = jnp.sum(self.weights * (self.loc - self.mean()[None]) ** 2, axis=0)
        return spread + jnp.sum(self.weights * self.loc_var, axis=0)

    # distribution
    @jax.jit
    def _log_prob(self, y) -> jax.Array:
        y = broadcast_eval(y, self.batch_shape, "y")
        loc, scale, weights = self._expanded(y.shape)
        z = (y[None] - loc) / scale
        return logsumexp(-0.5 * z**2 - jnp.log(scale) - _LOG_SQRT_2PI, axis=0, b=weights)

    @jax.jit
    def _cdf_of(self, t) -> jax.Array:
        return self._cdf(broadcast_eval(t, self.batch_shape, "t"))

    def quantile(self, q) -> jax.Array:
        """Exact mixture quantile: vectorised bisection on the mixture CDF.

        The bracket spans every component's +-12 sd, so it holds the quantile of every q in
        [1e-30, 1); 64 halvings reach the float resolution of the bracket.
        ``q = 0`` and ``q = 1`` return -inf and +inf (the ends of the support).
        """
        check_probability("q", q)
        return self._quantile(q)

    @jax.jit
    def _quantile(self, q):
        q = broadcast_eval(q, self.batch_shape, "q")
        lo = jnp.broadcast_to(jnp.min(self.loc - 12.0 * self.scale, axis=0), q.shape)
        hi = jnp.broadcast_to(jnp.max(self.loc + 12.0 * self.scale, axis=0), q.shape)

        def halve(_, bracket):
            lo, hi = bracket
            mid = 0.5 * (lo + hi)
            below = self._cdf(mid) < q
            return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

        lo, hi = jax.lax.fori_loop(0, _BISECTION_STEPS, halve, (lo, hi))
        x = jnp.where(q <= 0.0, -jnp.inf, 0.5 * (lo + hi))
        return jnp.where(q >= 1.0, jnp.inf, x)

    @functools.partial(jax.jit, static_argnames="n")
    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """``n`` draws, ``[n, *batch_shape]``; a draw uses one component for the whole batch
        wherever the weights agree (see ``pick_components``), so draws keep the posterior's
        correlation across the batch."""
        k_comp, k_noise = jax.random.split(key)
        comp = pick_components(k_comp, self.weights, n)
        loc = jnp.take_along_axis(self.loc, comp, axis=0)
        scale = jnp.take_along_axis(self.scale, comp, axis=0)
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
        return tuple(expand_to(a, shape, n) for a in (self.loc, self.scale, self.weights))

    def _cdf(self, t):
        loc, scale, weights = self._expanded(t.shape)
        return jnp.sum(weights * ndtr((t[None] - loc) / scale), axis=0)


def normalise_weights(weights, shape: tuple[int, ...], dtype) -> jax.Array:
    """Posterior weights ``[S]`` or ``[S, *batch]`` broadcast to ``shape`` = ``[S, *batch]``;
    uniform when ``None``."""
    if weights is None:
        return jnp.full(shape, 1.0 / shape[0], dtype=dtype)
    w = as_float(weights).astype(dtype)
    if w.ndim == 1:
        w = w.reshape(w.shape + (1,) * (len(shape) - 1))
    if w.ndim != len(shape) or broadcast_shape(w, shape, "weights", "the samples") != shape:
        raise ValueError(
            f"`weights` has shape {jnp.shape(weights)}; give [S] or [S, *batch_shape] for "
            f"samples of shape {shape}."
        )
    w = jnp.broadcast_to(w, shape)
    check_simplex("weights", w, axis=0)
    return w


def pick_components(key: jax.Array, weights: jax.Array, n: int) -> jax.Array:
    """``n`` component indices ``[n, *batch]`` drawn from ``weights`` ``[S, *batch]``.

    One uniform number per draw is shared by the batch (inverse-CDF sampling), so where the
    weights agree across the batch every element gets the same component; each marginal is
    exact either way.
    """
    u = jax.random.uniform(key, (n,) + (1,) * weights.ndim, weights.dtype)
    edges = jnp.cumsum(weights, axis=0)[:-1]  # the last edge is 1: rounding goes to comp S-1
    return jnp.sum(u >= edges[None], axis=1, dtype=jnp.int32)


jax.tree_util.register_dataclass(
    GaussianMixture, data_fields=["loc", "scale", "weights", "loc_var"], meta_fields=[]
)
