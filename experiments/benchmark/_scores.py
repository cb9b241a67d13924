"""Small statistics the benchmark needs beyond ``bdl.metrics``: agreement with a reference
predictive (Wasserstein-1, total variation) and mean +- standard error."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from bdl.predictive import Predictive

W1_GRID = 128


@jax.jit
def _w1_on_grid(a: Predictive, b: Predictive) -> jax.Array:
    """``int |F_a(t) - F_b(t)| dt`` per batch element on a grid of ``W1_GRID`` points spanning
    both predictives' mean +- 8 sd (trapezoid rule): ``[*batch_shape]``."""
    ma, mb = a.mean(), b.mean()
    sa, sb = jnp.sqrt(a.variance()), jnp.sqrt(b.variance())
    lo = jnp.minimum(ma - 8.0 * sa, mb - 8.0 * sb)
    hi = jnp.maximum(ma + 8.0 * sa, mb + 8.0 * sb)
    hi = jnp.where(hi > lo, hi, lo + 1.0)
    frac = jnp.linspace(0.0, 1.0, W1_GRID).reshape((-1,) + (1,) * ma.ndim)
    t = lo[None] + frac * (hi - lo)[None]  # [G, *batch]
    gap = jnp.abs(a.cdf(t) - b.cdf(t))
    return jax.scipy.integrate.trapezoid(gap, dx=1.0, axis=0) * (hi - lo) / (W1_GRID - 1)


def wasserstein1(a: Predictive, b: Predictive) -> float:
    """Mean over the batch of the Wasserstein-1 distance between the predictive marginals,
    ``W1 = int |F_a(t) - F_b(t)| dt`` (units of ``y``), by the trapezoid rule on a
    ``W1_GRID``-point grid per batch element (one CDF pass per predictive: cheap even for
    mixtures of hundreds of components). Both predictives need ``mean``, ``variance`` and
    ``cdf``; a point predictive's step CDF is resolved to the grid spacing."""
    return float(jnp.mean(_w1_on_grid(a, b)))


def total_variation(a: Predictive, b: Predictive) -> float:
    """Mean over the batch of ``0.5 * sum_c |p_a(c) - p_b(c)|`` between class probabilities."""
    return float(jnp.mean(0.5 * jnp.sum(jnp.abs(a.probs() - b.probs()), axis=-1)))


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error (``std / sqrt(n)``, ddof 1) of the finite ``values``; the
    standard error is NaN for fewer than two values, the mean inf if any value is inf."""
    v = np.asarray([float(x) for x in values], float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan, math.nan
    if np.any(np.isinf(v)):
        return float(np.sum(v)), math.nan  # +-inf (e.g. a point predictor's NLL)
    se = float(np.std(v, ddof=1) / np.sqrt(v.size)) if v.size > 1 else math.nan
    return float(np.mean(v)), se
