"""``evaluate``: every summary metric of a predictive against observed outcomes, as floats."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bdl.metrics._calibration import calibration_error, coverage, sharpness
from bdl.metrics._checks import check_target_values, targets
from bdl.metrics._classification import accuracy, brier, ece
from bdl.metrics._crps import crps
from bdl.metrics._regression import interval_score, nll
from bdl.predictive import Point, Predictive

REGRESSION_KEYS = (
    "rmse",
    "mse",
    "mae",
    "nll",
    "crps",
    "calibration_error",
    "coverage_90",
    "interval_width_90",
    "interval_score_90",
    "sharpness",
)
CLASSIFICATION_KEYS = ("accuracy", "nll", "ece", "brier")


def evaluate(pred: Predictive, y) -> dict[str, float]:
    """Summary metrics of ``pred`` at outcomes ``y``, averaged over every example.

    Regression (keys in this order):

    - ``rmse``, ``mse``, ``mae``: errors of the predictive mean.
    - ``nll``: mean negative log density. ``inf`` for a ``Point`` predictive (a point
      predictor puts no density anywhere else); a kernel density estimate for ``Samples``.
    - ``crps``: mean CRPS (closed form; equals ``mae`` for a ``Point``).
    - ``calibration_error``: see ``calibration_error`` (levels 0.05, ..., 0.95).
    - ``coverage_90``: fraction of ``y`` inside the central 90% interval.
    - ``interval_width_90``: mean width of that interval.
    - ``interval_score_90``: mean interval score of that interval.
    - ``sharpness``: ``sqrt(mean(variance))``.

    Classification: ``accuracy``, ``nll`` (mean negative log probability), ``ece`` (top-label,
    15 bins), ``brier`` (mean multi-class Brier score).

    Args:
      pred: a ``Predictive`` with batch shape ``B``.
      y: outcomes of shape ``B`` (finite), or integer labels in ``[0, C)``.

    Returns:
      ``dict`` of Python floats.

    Raises:
      ValueError: naming ``y`` if its shape is not ``B``, it holds NaN/inf, or labels are not
        integers in range.
    """
    y = targets(pred, y)
    check_target_values(pred, y)
    if pred.is_classification:
        keys, values = CLASSIFICATION_KEYS, _classification_summary(pred, y)
    else:
        keys, values = REGRESSION_KEYS, _regression_summary(pred, y)
    return {name: float(values[name]) for name in keys}  # jit returns dicts sorted by key


@jax.jit
def _regression_summary(pred: Predictive, y: jax.Array) -> dict[str, jax.Array]:
    error = pred.mean() - y
    mse = jnp.mean(error**2)
    lower, upper = pred.interval(0.9)
    mean_nll = jnp.array(jnp.inf, y.dtype) if isinstance(pred, Point) else jnp.mean(nll(pred, y))
    return {
        "rmse": jnp.sqrt(mse),
        "mse": mse,
        "mae": jnp.mean(jnp.abs(error)),
        "nll": mean_nll,
        "crps": jnp.mean(crps(pred, y)),
        "calibration_error": calibration_error(pred, y),
        "coverage_90": jnp.mean(coverage(pred, y, 0.9)),
        "interval_width_90": jnp.mean(upper - lower),
        "interval_score_90": jnp.mean(interval_score(pred, y, 0.9)),
        "sharpness": sharpness(pred),
    }


@jax.jit
def _classification_summary(pred: Predictive, y: jax.Array) -> dict[str, jax.Array]:
    return {
        "accuracy": jnp.mean(accuracy(pred, y)),
        "nll": jnp.mean(nll(pred, y)),
        "ece": ece(pred, y),
        "brier": jnp.mean(brier(pred, y)),
    }
