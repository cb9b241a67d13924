"""Shared pieces of split conformal prediction: checks and the finite-sample quantile."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from bdl._validation import as_float, check_finite, check_probability
from bdl.predictive import Predictive


def conformal_quantile(scores, level) -> jax.Array:
    """The split-conformal threshold: the ``ceil((n + 1) level)``-th smallest of ``n`` scores.

    For exchangeable calibration and test scores, a new score falls at or below it with
    probability at least ``level`` (and below ``level + 1 / (n + 1)`` without ties);
    ``+inf`` when ``(n + 1) level > n`` (too few calibration points for that level).

    Args:
      scores: conformity scores ``[n, ...]``; the quantile is taken over axis 0.
      level: nominal probability in [0, 1], a scalar or ``[L]`` (then ``L`` thresholds are
        stacked along a new leading axis).

    Returns:
      ``scores.shape[1:]``, or ``[L, *scores.shape[1:]]`` for an array ``level``.
    """
    scores = as_float(scores)
    check_finite("scores", scores)
    check_probability("level", level)
    if scores.ndim == 0 or scores.shape[0] < 1:
        raise ValueError("`scores` needs a leading axis of at least one calibration score.")
    n = scores.shape[0]
    ranks = conformal_ranks(n, level)
    ordered = jnp.sort(scores, axis=0)
    picked = jnp.take(ordered, np.clip(ranks, 1, n) - 1, axis=0)
    too_few = jnp.asarray(ranks > n).reshape(ranks.shape + (1,) * (scores.ndim - 1))
    return jnp.where(too_few, jnp.inf, picked)


def conformal_ranks(n: int, level) -> np.ndarray:
    """1-based ranks ``ceil((n + 1) level)`` of the conformal quantiles among ``n`` scores
    (may exceed ``n``: the quantile is then infinite); shape of ``level``."""
    return np.ceil((n + 1) * np.asarray(level, np.float64) - 1e-9).astype(np.int64)


def calibration_pair(cal: Predictive, y_cal, test: Predictive) -> jax.Array:
    """Check a calibration predictive, its outcomes and a test predictive; ``y_cal`` as float.

    Raises ``ValueError`` naming the argument for a classification predictive, a shape
    mismatch, NaN/inf outcomes, and calibration and test batches whose trailing axes (the
    columns a batch element is exchangeable across, e.g. routes) differ.
    """
    for name, pred in (("cal", cal), ("test", test)):
        if not isinstance(pred, Predictive):
            raise TypeError(f"`{name}` must be a bdl.Predictive; got {type(pred).__name__}.")
        if pred.is_classification:
            raise ValueError(f"`{name}` is a classification predictive; conformal regression "
                             "needs real-valued outcomes.")
    y_cal = as_float(y_cal)
    if tuple(y_cal.shape) != tuple(cal.batch_shape):
        raise ValueError(f"`y_cal` has shape {tuple(y_cal.shape)}; expected `cal`'s batch shape "
                         f"{tuple(cal.batch_shape)}.")
    check_finite("y_cal", y_cal)
    if math.prod(cal.batch_shape) < 1:
        raise ValueError("`cal` is empty: split conformal needs calibration examples.")
    return y_cal


def check_level(level) -> float:
    """``level`` as a float strictly inside (0, 1)."""
    check_probability("level", level)
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"`level` must lie strictly between 0 and 1; got {level}.")
    return level
