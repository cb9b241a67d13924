"""Calibration and sharpness of regression predictives.

A predictive is calibrated when its probability integral transform ``PIT = F(y)`` is uniform:
then ``P(PIT <= p) = p`` for every level ``p`` and each central ``level`` interval holds a
fraction ``level`` of the outcomes. Sharpness measures how concentrated it is regardless of
``y``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from bdl._validation import as_float, check_probability
from bdl.metrics._checks import check_open_unit, require_regression, targets
from bdl.predictive import Predictive

DEFAULT_LEVELS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05, 0.10, ..., 0.95


class CalibrationCurve(NamedTuple):
    """Regression calibration curve (expected vs observed frequency).

    Attributes:
      expected: the levels ``p``, shape ``[L]``.
      observed: fraction of examples with ``PIT <= p``, i.e. ``y`` at or below the predictive
        ``p``-quantile, shape ``[L]``. A calibrated predictive has ``observed ~ expected``.
    """

    expected: jax.Array
    observed: jax.Array


def pit(pred: Predictive, y) -> jax.Array:
    """Probability integral transform ``pred.cdf(y)``, shape ``B``, in [0, 1]."""
    require_regression(pred, "pit")
    return _pit(pred, targets(pred, y))


def coverage(pred: Predictive, y, level: float = 0.9) -> jax.Array:
    """Whether ``y`` falls in the central ``level`` interval (bounds included).

    Args:
      pred: a regression predictive with batch shape ``B``.
      y: observed outcomes, shape ``B``.
      level: nominal coverage in (0, 1).

    Returns:
      Per-example indicator (float 0/1), shape ``B``; its mean is the empirical coverage.
    """
    require_regression(pred, "coverage")
    y = targets(pred, y)
    check_open_unit("level", level)
    return _coverage(pred, y, as_float(level))


def calibration_curve(pred: Predictive, y, levels=None) -> CalibrationCurve:
    """Observed frequency of ``PIT <= p`` at each level ``p`` (Kuleshov et al. 2018).

    Args:
      pred: a regression predictive with batch shape ``B``.
      y: observed outcomes, shape ``B``.
      levels: probabilities in [0, 1], shape ``[L]``; default 0.05, 0.10, ..., 0.95 (L = 19).

    Returns:
      ``CalibrationCurve(expected [L], observed [L])``, pooled over every example.
    """
    require_regression(pred, "calibration_curve")
    levels = _levels(levels)
    return CalibrationCurve(expected=levels, observed=_observed(pred, targets(pred, y), levels))


def calibration_error(pred: Predictive, y, levels=None) -> jax.Array:
    """Mean absolute calibration error of the PIT (scalar).

    ``(1 / L) sum_l |mean_n 1[PIT_n <= p_l] - p_l|`` over ``levels`` (default
    ``p = 0.05, 0.10, ..., 0.95``, L = 19): the mean vertical distance of
    ``calibration_curve`` from the diagonal. 0 for a calibrated predictive up to sampling noise
    (about ``0.8 * sqrt(p (1 - p) / N)`` per level); at most ~0.5.

    Args:
      pred: a regression predictive with batch shape ``B``.
      y: observed outcomes, shape ``B``.
      levels: probabilities in [0, 1], shape ``[L]``.

    Returns:
      Scalar array.
    """
    curve = calibration_curve(pred, y, levels)
    return jnp.mean(jnp.abs(curve.observed - curve.expected))


def sharpness(pred: Predictive) -> jax.Array:
    """Root mean predictive variance ``sqrt(mean(pred.variance()))`` (scalar, units of ``y``).

    Smaller is sharper; judge it together with calibration (as uncertainty-toolbox does).
    """
    require_regression(pred, "sharpness")
    return _sharpness(pred)


@jax.jit
def _pit(pred, y):
    return pred.cdf(y)


@jax.jit
def _coverage(pred, y, level):
    lower, upper = pred.interval(level)
    return ((y >= lower) & (y <= upper)).astype(y.dtype)


@jax.jit
def _observed(pred, y, levels):
    u = pred.cdf(y).reshape(-1)
    return jnp.mean((u[None, :] <= levels[:, None]).astype(u.dtype), axis=1)


@jax.jit
def _sharpness(pred):
    return jnp.sqrt(jnp.mean(pred.variance()))


def _levels(levels) -> jax.Array:
    if levels is None:
        return as_float(DEFAULT_LEVELS)
    check_probability("levels", levels)
    levels = as_float(levels)
    if levels.ndim != 1:
        raise ValueError(f"`levels` must be one-dimensional [L]; got shape {levels.shape}.")
    return levels
