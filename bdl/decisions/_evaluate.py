"""Scoring decisions against what happened: realised utility, oracle, regret, decision ECE.

Outcomes ``y_true`` always have the predictive's batch shape: for a selection the outcome of
every alternative (how long each route actually took, ``[days, routes]``), for an action
utility one outcome per batch element ``[*batch]`` (the demand, the true class).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bdl._validation import check_finite, check_shape
from bdl.decisions._expected import _expected, check_fit
from bdl.decisions._utilities import Utility
from bdl.predictive import Predictive

__all__ = [
    "DecisionCalibration",
    "realised_utility",
    "oracle_utility",
    "calibration_from_values",
    "decision_calibration_curve",
    "evaluate",
]


class DecisionCalibration(NamedTuple):
    """Data of a decision-calibration diagram (predicted vs realised utility per bin).

    Attributes:
      predicted: mean predicted expected utility of the chosen action per bin, ``[B]``
        (NaN for an empty bin).
      realised: mean realised utility per bin, ``[B]`` (NaN for an empty bin).
      counts: number of decisions per bin, ``[B]``.
      edges: bin edges, ``[B + 1]``.
      ece: ``sum_b counts_b / N * |predicted_b - realised_b|`` (scalar).
    """

    predicted: jax.Array
    realised: jax.Array
    counts: jax.Array
    edges: jax.Array
    ece: jax.Array


def realised_utility(u: Utility, y_true, action) -> jax.Array:
    """Utility of the chosen ``action`` (indices ``[...]``, as :func:`choose` returns them) once
    ``y_true`` (the predictive's batch shape) is known; ``[...]``."""
    values = _choice_values(u, y_true)  # [..., K] or [..., A]
    return jnp.take_along_axis(values, jnp.asarray(action)[..., None], axis=-1)[..., 0]


def oracle_utility(u: Utility, y_true) -> jax.Array:
    """Best utility achievable had ``y_true`` been known in advance; ``[...]``."""
    return jnp.max(_choice_values(u, y_true), axis=-1)


def _choice_values(u: Utility, y_true) -> jax.Array:
    if u.kind == "outcome":
        raise ValueError(f"`u` ({u.name}) does not say what is chosen: wrap it in "
                         "bdl.decisions.select(u) or bdl.decisions.act(u, cost).")
    return u(y_true)


def calibration_from_values(
    predicted, realised, num_bins: int = 10, bounds: tuple[float, float] | None = None
) -> DecisionCalibration:
    """Equal-width binning of ``predicted`` (any shape) with the matching ``realised`` values.

    ``bounds`` fixes the binned range (``(0, 1)`` for probabilities); by default it is the range
    of ``predicted``. The core is jitted with ``num_bins`` and ``bounds`` static.
    """
    predicted = jnp.asarray(predicted, dtype=jnp.result_type(float))
    realised = jnp.asarray(realised, dtype=predicted.dtype)
    if bounds is not None:
        bounds = (float(bounds[0]), float(bounds[1]))
    return _binned(predicted, realised, _bins(num_bins), bounds)


@functools.partial(jax.jit, static_argnames=("num_bins", "bounds"))
def _binned(predicted, realised, num_bins, bounds) -> DecisionCalibration:
    predicted, realised = jnp.ravel(predicted), jnp.ravel(realised)
    if bounds is None:
        low, high = jnp.min(predicted), jnp.max(predicted)
    else:
        low, high = (jnp.asarray(b, predicted.dtype) for b in bounds)
    high = jnp.where(high > low, high, low + 1.0)
    edges = jnp.linspace(low, high, num_bins + 1)
    idx = jnp.clip(jnp.floor((predicted - low) / (high - low) * num_bins), 0, num_bins - 1)
    idx = idx.astype(jnp.int32)
    counts = jax.ops.segment_sum(jnp.ones_like(predicted), idx, num_segments=num_bins)
    sum_pred = jax.ops.segment_sum(predicted, idx, num_segments=num_bins)
    sum_real = jax.ops.segment_sum(realised, idx, num_segments=num_bins)
    safe = jnp.maximum(counts, 1.0)
    ece = jnp.sum(jnp.abs(sum_pred - sum_real)) / predicted.shape[0]
    empty = counts == 0
    return DecisionCalibration(
        predicted=jnp.where(empty, jnp.nan, sum_pred / safe),
        realised=jnp.where(empty, jnp.nan, sum_real / safe),
        counts=counts.astype(jnp.int32),
        edges=edges,
        ece=ece,
    )


def decision_calibration_curve(
    pred: Predictive,
    y_true,
    u: Utility,
    *,
    key: jax.Array | None = None,
    num_samples: int = 1000,
    num_bins: int = 10,
    bounds: tuple[float, float] | None = None,
) -> DecisionCalibration:
    """Predicted expected utility of the Bayes action against the utility it realised.

    For ``threshold(30.0)`` this is the reliability diagram of the predicted P(T <= 30) of the
    chosen route against how often it arrived in time. Bins span ``bounds``, else the
    utility's known range (``u.bounds``), else the range of the predictions.
    """
    chosen_eu, realised, _ = _decide(pred, y_true, u, key, num_samples)
    bounds = bounds if bounds is not None else u.bounds
    return calibration_from_values(chosen_eu, realised, num_bins, bounds)


def evaluate(
    pred: Predictive,
    y_true,
    u: Utility,
    *,
    key: jax.Array | None = None,
    num_samples: int = 1000,
    num_bins: int = 10,
) -> dict[str, float]:
    """Decision metrics of acting on ``pred`` with utility ``u``, averaged over the cases.

    Args:
      pred: predictive with batch shape ``[*batch]``.
      y_true: what happened, same shape as ``pred.batch_shape``; integer labels for a
        classification predictive.
      u: what is decided: an action utility (one decision per batch element, e.g.
        ``act(threshold(200.0, below=False), cost=0.2)``, ``asymmetric``, ``selective``) or a
        selection ``select(u, axis)`` (one of the alternatives along ``axis`` per case, e.g.
        the route of each day). A bare outcome utility such as ``threshold(30.0)`` raises.
      key, num_samples: Monte Carlo settings, used only where no exact expectation exists.
      num_bins: bins of the decision calibration.

    Returns:
      dict of floats: ``expected_utility`` (mean predicted EU of the chosen action),
      ``realised_utility``, ``oracle_utility`` (best achievable knowing ``y_true``),
      ``regret`` (oracle - realised, averaged over the decisions: examples for an action
      utility, cases such as days for a selection), ``decision_ece`` (calibration of the chosen action's
      predicted EU against its realised utility, in utility units) and ``optimal_rate``
      (fraction of cases whose chosen action was optimal).
    """
    chosen_eu, realised, oracle = _decide(pred, y_true, u, key, num_samples)
    curve = calibration_from_values(chosen_eu, realised, num_bins, u.bounds)
    return {
        "expected_utility": float(jnp.mean(chosen_eu)),
        "realised_utility": float(jnp.mean(realised)),
        "oracle_utility": float(jnp.mean(oracle)),
        "regret": float(jnp.mean(oracle - realised)),
        "decision_ece": float(curve.ece),
        "optimal_rate": float(jnp.mean(realised == oracle)),
    }


def _decide(pred, y_true, u, key, num_samples):
    """Predicted EU of the Bayes action, its realised utility and the oracle's; each ``[...]``."""
    u = check_fit(pred, u, decide=True)
    y_true = _check_outcomes(pred, y_true)
    eu = _expected(pred, u, key, num_samples)
    if not np.all(np.isfinite(np.asarray(eu))):
        raise ValueError(
            f"`pred` gives non-finite expected utilities under {u.name}; check its parameters "
            "for NaN or infinite values."
        )
    return _score(eu, u(y_true))


@jax.jit
def _score(eu, values):
    """Chosen action's predicted EU, its realised utility and the oracle's, from the expected
    utilities ``eu`` and the realised utilities ``values`` of every choice ``[..., K or A]``."""
    action = jnp.argmax(eu, axis=-1)[..., None]
    chosen_eu = jnp.take_along_axis(eu, action, axis=-1)[..., 0]
    realised = jnp.take_along_axis(values, action, axis=-1)[..., 0]
    return chosen_eu, realised, jnp.max(values, axis=-1)


def _check_outcomes(pred: Predictive, y_true) -> jax.Array:
    y_true = jnp.asarray(y_true)
    check_shape("y_true", y_true, pred.batch_shape)
    if y_true.size == 0:
        raise ValueError("`y_true` is empty; there is nothing to evaluate.")
    if pred.is_classification:
        if not jnp.issubdtype(y_true.dtype, jnp.integer):
            raise ValueError(f"`y_true` must hold integer class labels; got dtype {y_true.dtype}.")
        lo, hi, n_cls = int(jnp.min(y_true)), int(jnp.max(y_true)), pred.probs().shape[-1]
        if lo < 0 or hi >= n_cls:
            raise ValueError(f"`y_true` labels must lie in [0, {n_cls - 1}]; got [{lo}, {hi}].")
        return y_true
    if not jnp.issubdtype(y_true.dtype, jnp.floating):
        y_true = y_true.astype(jnp.result_type(float))
    check_finite("y_true", y_true)
    return y_true


def _bins(num_bins) -> int:
    if not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise ValueError(f"`num_bins` must be a positive int; got {num_bins!r}.")
    return int(num_bins)
