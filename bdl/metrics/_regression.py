"""Per-example regression scores: errors of the mean, NLL, quantile and interval scores.

Every function here takes a regression ``Predictive`` with batch shape ``B`` and outcomes ``y``
of shape ``B`` and returns one score per example (shape ``B``, or the broadcast shape noted);
take ``.mean()`` for the usual summary. All are jit-able (``pred`` is a pytree); argument
checks run outside a jitted core, so eager calls compile once per shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bdl._validation import as_float, check_finite
from bdl.metrics._checks import check_open_unit, require_regression, targets
from bdl.predictive import Predictive


def nll(pred: Predictive, y) -> jax.Array:
    """Negative log predictive density (regression) or probability (classification).

    Works for every kind: integer labels for classification, real outcomes otherwise. A
    ``Point`` predictive gives +inf off the point (and -inf exactly at it); a ``Samples``
    predictive uses its kernel density estimate.

    Args:
      pred: a predictive with batch shape ``B``.
      y: observed outcomes or labels, shape ``B``.

    Returns:
      ``-pred.log_prob(y)``, shape ``B``.
    """
    return _nll(pred, targets(pred, y))


def squared_error(pred: Predictive, y) -> jax.Array:
    """``(mean - y)^2`` of the predictive mean, shape ``B``."""
    require_regression(pred, "squared_error")
    return _squared_error(pred, targets(pred, y))


def absolute_error(pred: Predictive, y) -> jax.Array:
    """``|mean - y|`` of the predictive mean, shape ``B``."""
    require_regression(pred, "absolute_error")
    return _absolute_error(pred, targets(pred, y))


def pinball_loss(pred: Predictive, y, q) -> jax.Array:
    """Pinball (quantile) loss of the predictive ``q``-quantile.

    ``rho_q(y - x) = max(q (y - x), (q - 1)(y - x))`` with ``x = pred.quantile(q)``
    (Koenker & Bassett 1978; scoringrules' ``quantile_score``).

    Args:
      pred: a regression predictive with batch shape ``B``.
      y: observed outcomes, shape ``B``.
      q: probability level(s) in (0, 1); broadcasts against ``B`` like ``pred.quantile``
        (``[Q, 1, ..., 1]`` gives ``[Q, *B]``).

    Returns:
      Loss with the broadcast shape of ``q`` and ``B``.
    """
    require_regression(pred, "pinball_loss")
    y = targets(pred, y)
    check_open_unit("q", q)
    return _pinball_loss(pred, y, as_float(q))


def interval_width(pred: Predictive, level: float = 0.9) -> jax.Array:
    """Width ``upper - lower`` of the central ``level`` interval, shape ``B``."""
    require_regression(pred, "interval_width")
    check_open_unit("level", level)
    return _interval_width(pred, as_float(level))


def interval_score(pred: Predictive, y, level: float = 0.9) -> jax.Array:
    """Interval (Winkler) score of the central ``level`` interval (Gneiting & Raftery 2007).

    With ``alpha = 1 - level`` and ``[l, u] = pred.interval(level)``::

        (u - l) + (2 / alpha) (l - y) 1[y < l] + (2 / alpha) (y - u) 1[y > u]

    Args:
      pred: a regression predictive with batch shape ``B``.
      y: observed outcomes, shape ``B``.
      level: nominal coverage in (0, 1).

    Returns:
      Score per example, shape ``B``; lower is better.
    """
    require_regression(pred, "interval_score")
    y = targets(pred, y)
    check_open_unit("level", level)
    return _interval_score(pred, y, as_float(level))


def threshold_brier(pred: Predictive, y, t) -> jax.Array:
    """Brier score of the predicted probability of the event ``y <= t``.

    ``(pred.cdf(t) - 1[y <= t])^2``: the calibration of a threshold decision (e.g. "arrive
    within 30 minutes").

    Args:
      pred: a regression predictive with batch shape ``B``.
      y: observed outcomes, shape ``B``.
      t: threshold(s); broadcasts against ``B`` like ``pred.cdf``.

    Returns:
      Score with the broadcast shape of ``t`` and ``B``, in [0, 1].
    """
    require_regression(pred, "threshold_brier")
    y = targets(pred, y)
    check_finite("t", t)
    return _threshold_brier(pred, y, as_float(t))


@jax.jit
def _nll(pred, y):
    return -pred.log_prob(y)


@jax.jit
def _squared_error(pred, y):
    return (pred.mean() - y) ** 2


@jax.jit
def _absolute_error(pred, y):
    return jnp.abs(pred.mean() - y)


@jax.jit
def _pinball_loss(pred, y, q):
    diff = y - pred.quantile(q)
    return jnp.maximum(q * diff, (q - 1.0) * diff)


@jax.jit
def _interval_width(pred, level):
    lower, upper = pred.interval(level)
    return upper - lower


@jax.jit
def _interval_score(pred, y, level):
    lower, upper = pred.interval(level)
    penalty = jnp.maximum(lower - y, 0.0) + jnp.maximum(y - upper, 0.0)
    return (upper - lower) + (2.0 / (1.0 - level)) * penalty


@jax.jit
def _threshold_brier(pred, y, t):
    prob = pred.cdf(t)
    return (prob - (y <= t).astype(prob.dtype)) ** 2
