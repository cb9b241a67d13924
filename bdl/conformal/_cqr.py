"""Conformalised quantile regression (Romano et al. 2019) on a predictive's quantiles."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bdl.conformal._scores import (
    calibration_pair,
    check_level,
    conformal_quantile,
    conformal_ranks,
)
from bdl.predictive import Predictive


def quantile_levels(num_levels: int) -> np.ndarray:
    """Midpoint levels ``(k + 0.5) / K``, ``k = 0..K-1``, shape ``[K]``."""
    if int(num_levels) < 2:
        raise ValueError(f"`num_levels` must be >= 2; got {num_levels}.")
    return (np.arange(int(num_levels)) + 0.5) / int(num_levels)


def cqr_interval(cal: Predictive, y_cal, test: Predictive, level: float = 0.9
                 ) -> tuple[jax.Array, jax.Array]:
    """CQR's interval ``[Q_lo(x) - E, Q_hi(x) + E]`` (Romano et al. 2019).

    ``Q_lo, Q_hi`` are the base predictive's ``(1 -+ level) / 2`` quantiles and ``E`` the
    conformal quantile of the scores ``max(Q_lo(x_i) - y_i, y_i - Q_hi(x_i))``: coverage
    ``>= level`` on average over the pooled calibration population, with a width that
    follows the base predictive's spread.

    Args:
      cal: base predictive on the calibration inputs, batch shape ``C``.
      y_cal: calibration outcomes, shape ``C``.
      test: base predictive on the test inputs, batch shape ``T``.
      level: nominal coverage in (0, 1).

    Returns:
      ``(lower, upper)``, each of shape ``T``.
    """
    y_cal = calibration_pair(cal, y_cal, test)
    level = check_level(level)
    lo, hi = cal.interval(level)
    scores = jnp.maximum(lo - y_cal, y_cal - hi).reshape(-1)
    e = conformal_quantile(scores, level)
    t_lo, t_hi = test.interval(level)
    return t_lo - e, t_hi + e


def conformalised_quantiles(cal: Predictive, y_cal, test: Predictive, num_levels: int = 200
                            ) -> Predictive:
    """A whole predictive distribution from CQR applied at every level of a grid.

    For each level ``p_k = (k + 0.5) / K`` the base quantile is shifted by the conformal
    correction ``E_k``, the ``p_k`` conformal quantile of ``y_i - Q_{p_k}(x_i)`` over the
    calibration set, so ``P(y <= Q_{p_k}(x) + E_k) >= p_k`` on average (one-sided CQR, Romano
    et al. 2019, Sec. 6); the corrected quantiles are sorted per input (monotone
    rearrangement, Chernozhukov et al. 2010). Unlike :func:`split_conformal` the spread
    follows the base predictive (e.g. a heteroscedastic network's noise scale), so it adapts
    to the input; the guarantee is still marginal (pooled over the calibration batch).
    Corrections that would be infinite (``(n + 1) p_k > n``) use the largest score instead.

    Args:
      cal: base predictive on the calibration inputs, batch shape ``C``.
      y_cal: calibration outcomes, shape ``C``.
      test: base predictive on the test inputs, batch shape ``T``.
      num_levels: ``K``, the number of quantile levels (the draws of the result).

    Returns:
      A ``Samples`` predictive of ``K`` draws (the corrected quantiles), batch shape ``T``.
    """
    y_cal = calibration_pair(cal, y_cal, test)
    levels = quantile_levels(num_levels)
    q_cal = cal.quantile(jnp.asarray(levels).reshape((-1,) + (1,) * len(cal.batch_shape)))
    scores = (y_cal[None] - q_cal).reshape(levels.shape[0], -1).T  # [n, K]
    n = scores.shape[0]
    ranks = np.minimum(conformal_ranks(n, levels), n)  # capped: every correction finite
    corrections = jnp.sort(scores, axis=0)[ranks - 1, np.arange(levels.shape[0])]  # [K]
    q_test = test.quantile(jnp.asarray(levels).reshape((-1,) + (1,) * len(test.batch_shape)))
    shifted = q_test + corrections.reshape((-1,) + (1,) * len(test.batch_shape))
    return Predictive.from_samples(jnp.sort(shifted, axis=0))
