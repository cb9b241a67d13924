"""Continuous ranked probability score, in closed form for every regression kind.

``CRPS(F, y) = E|X - y| - 0.5 E|X - X'|`` with ``X, X' ~ F`` independent (Gneiting & Raftery
2007, eq. 21). Lower is better; it has the units of ``y`` and equals the absolute error for a
point predictor. The private cores are jitted, so eager calls compile once per shape.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

from bdl.metrics._checks import check_count, require_regression, targets
from bdl.predictive import GaussianMixture, Point, Predictive, Samples

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
# Elements of one [chunk, S, *batch] block of the pairwise term (16 MiB in float32).
_PAIR_BLOCK_ELEMENTS = 2**22


def crps(pred: Predictive, y, *, chunk_size: int | None = None) -> jax.Array:
    """Per-example CRPS of ``pred`` at outcomes ``y``.

    - ``GaussianMixture`` (weights ``w``, means ``mu``, sds ``s``), closed form
      (Grimit et al. 2006)::

          sum_i w_i A(y - mu_i, s_i^2) - 0.5 sum_ij w_i w_j A(mu_i - mu_j, s_i^2 + s_j^2)
          A(m, v) = 2 sqrt(v) phi(m / sqrt(v)) + m (2 Phi(m / sqrt(v)) - 1)

      The pairwise term costs O(S^2 * batch) time; it is built ``chunk_size`` components at a
      time, so memory is O(chunk_size * S * batch). By default ``chunk_size`` keeps one block
      near 2^22 elements.
    - ``Samples`` (draws ``x_1..x_N``): the CRPS of the empirical distribution (the "energy"
      estimator, scoringrules' ``estimator="nrg"``), computed from the sorted draws in
      O(N log N): ``mean_i |x_i - y| - sum_i (2i - N - 1) x_(i) / N^2``.
    - ``Point``: ``|y - values|``.

    Args:
      pred: a regression predictive with batch shape ``B``.
      y: observed outcomes, shape ``B``.
      chunk_size: mixture components per block of the pairwise term (mixtures only).

    Returns:
      CRPS per example, shape ``B``.
    """
    require_regression(pred, "crps")
    y = targets(pred, y)
    if isinstance(pred, GaussianMixture):
        chunk_size = _chunk_size(pred.loc.shape, chunk_size)
        return _crps_mixture(pred.loc, pred.scale, pred.weights, y, chunk_size=chunk_size)
    if isinstance(pred, Samples):
        return _crps_samples(pred.samples, y)
    if isinstance(pred, Point):
        return jnp.abs(y - pred.values)
    raise NotImplementedError(f"`crps` is not defined for a {type(pred).__name__} predictive.")


def _chunk_size(shape: tuple[int, ...], chunk_size: int | None) -> int:
    """Components per block of the pairwise term for parameters of ``shape`` ``[S, *B]``."""
    n_comp = shape[0]
    if chunk_size is None:
        block = n_comp * max(1, math.prod(shape[1:]))
        return max(1, min(n_comp, _PAIR_BLOCK_ELEMENTS // block))
    check_count("chunk_size", chunk_size)
    return min(int(chunk_size), n_comp)


def _a(m: jax.Array, v: jax.Array) -> jax.Array:
    """``A(m, v) = E|Z|`` for ``Z ~ N(m, v)``."""
    sd = jnp.sqrt(v)
    z = m / sd
    return 2.0 * sd * _INV_SQRT_2PI * jnp.exp(-0.5 * z * z) + m * erf(z * _INV_SQRT_2)


@functools.partial(jax.jit, static_argnames="chunk_size")
def _crps_mixture(loc, scale, weights, y, *, chunk_size: int) -> jax.Array:
    """Closed-form mixture CRPS; ``loc``/``scale``/``weights`` ``[S, *B]``, ``y`` ``[*B]``."""
    var = scale**2
    expected_error = jnp.sum(weights * _a(y - loc, var), axis=0)

    def row(component):
        loc_i, var_i, w_i = component
        return w_i * jnp.sum(weights * _a(loc_i - loc, var_i + var), axis=0)

    rows = jax.lax.map(row, (loc, var, weights), batch_size=chunk_size)
    return expected_error - 0.5 * jnp.sum(rows, axis=0)


@jax.jit
def _crps_samples(samples, y) -> jax.Array:
    """CRPS of the empirical distribution of ``samples`` ``[N, *B]`` at ``y`` ``[*B]``."""
    n = samples.shape[0]
    ordered = jnp.sort(samples, axis=0)
    rank = jnp.arange(1, n + 1, dtype=ordered.dtype)
    coef = ((2.0 * rank - (n + 1.0)) / n / n).reshape((n,) + (1,) * (ordered.ndim - 1))
    half_spread = jnp.sum(coef * ordered, axis=0)
    return jnp.mean(jnp.abs(ordered - y), axis=0) - half_spread
