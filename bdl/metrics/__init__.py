"""Metrics: plain array functions of a ``Predictive`` and observed outcomes.

Per-example scores (``crps``, ``nll``, ``pinball_loss``, ``interval_score``, ...) return one
value per batch element (shape ``pred.batch_shape``; take ``.mean()``); calibration summaries
(``calibration_error``, ``ece``) return scalars; ``reliability_diagram`` and
``calibration_curve`` return NamedTuples of arrays for plotting elsewhere. All are jit-able
(the predictive is a pytree) and check only shapes and dtypes; ``evaluate`` also checks values
and returns a ``dict`` of Python floats.

Example:
  >>> import jax.numpy as jnp
  >>> from bdl import Predictive, metrics
  >>> pred = Predictive.gaussian(jnp.zeros(3), jnp.ones(3))
  >>> metrics.crps(pred, jnp.zeros(3)).shape
  (3,)
  >>> list(metrics.evaluate(pred, jnp.zeros(3)))[:3]
  ['rmse', 'mse', 'mae']
"""

from bdl.metrics._calibration import (
    CalibrationCurve,
    calibration_curve,
    calibration_error,
    coverage,
    pit,
    sharpness,
)
from bdl.metrics._classification import (
    ReliabilityDiagram,
    accuracy,
    brier,
    ece,
    reliability_diagram,
)
from bdl.metrics._crps import crps
from bdl.metrics._evaluate import CLASSIFICATION_KEYS, REGRESSION_KEYS, evaluate
from bdl.metrics._regression import (
    absolute_error,
    interval_score,
    interval_width,
    nll,
    pinball_loss,
    squared_error,
    threshold_brier,
)

__all__ = [
    "evaluate",
    "REGRESSION_KEYS",
    "CLASSIFICATION_KEYS",
    # regression, per example
    "crps",
    "nll",
    "squared_error",
    "absolute_error",
    "pinball_loss",
    "interval_score",
    "interval_width",
    "threshold_brier",
    "coverage",
    "pit",
    # regression calibration / sharpness
    "calibration_curve",
    "calibration_error",
    "sharpness",
    "CalibrationCurve",
    # classification
    "accuracy",
    "brier",
    "ece",
    "reliability_diagram",
    "ReliabilityDiagram",
]
