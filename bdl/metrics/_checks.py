"""Argument checks shared by the metrics.

Two kinds, following ``bdl._validation``: *static* checks (shape, dtype, kind of predictive)
cost nothing and run in every public metric, under ``jit`` too; *value* checks (NaN, label
range) need concrete arrays and a host transfer, so only ``evaluate`` runs them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bdl._validation import as_float, check_finite, is_concrete
from bdl.predictive import Predictive


def require_regression(pred: Predictive, metric: str) -> None:
    """Raise ``ValueError`` if ``pred`` is a distribution over class labels."""
    if pred.is_classification:
        raise ValueError(
            f"`{metric}` is a regression metric, but `pred` is a {type(pred).__name__} "
            "predictive over class labels."
        )


def require_classification(pred: Predictive, metric: str) -> None:
    """Raise ``ValueError`` unless ``pred`` is a distribution over class labels."""
    if not pred.is_classification:
        raise ValueError(
            f"`{metric}` is a classification metric, but `pred` is a {type(pred).__name__} "
            "predictive over real outcomes."
        )


def targets(pred: Predictive, y) -> jax.Array:
    """``y`` as an array of shape ``pred.batch_shape`` (static checks only).

    Regression: returned as float. Classification: must hold integer labels.
    """
    y = jnp.asarray(y)
    if tuple(y.shape) != tuple(pred.batch_shape):
        raise ValueError(
            f"`y` has shape {tuple(y.shape)}; expected the predictive's batch shape "
            f"{tuple(pred.batch_shape)}."
        )
    if pred.is_classification:
        if not jnp.issubdtype(y.dtype, jnp.integer):
            raise ValueError(
                f"`y` must hold integer class labels for a classification predictive; got "
                f"dtype {y.dtype} (convert with `y.astype(int)`)."
            )
        return y
    return as_float(y)


def check_target_values(pred: Predictive, y: jax.Array) -> None:
    """Value checks on concrete ``y``: finite outcomes, or labels in ``[0, num_classes)``."""
    if not is_concrete(y):
        return
    if not pred.is_classification:
        check_finite("y", y)
        return
    arr = np.asarray(y)
    n_classes = int(jax.eval_shape(pred.probs).shape[-1])
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(
            f"`y` holds class labels in [{arr.min()}, {arr.max()}]; the predictive has "
            f"{n_classes} classes, so labels must lie in [0, {n_classes - 1}]."
        )


def check_open_unit(name: str, x) -> None:
    """Raise ``ValueError`` unless every entry of concrete ``x`` lies strictly in (0, 1)."""
    check_finite(name, x)
    if is_concrete(x):
        arr = np.asarray(x)
        if np.any((arr <= 0) | (arr >= 1)):
            raise ValueError(
                f"`{name}` must lie strictly between 0 and 1; got values in "
                f"[{arr.min()!r}, {arr.max()!r}]."
            )


def check_count(name: str, n) -> None:
    """Raise ``ValueError`` unless ``n`` is a Python integer >= 1 (a static size)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {n!r}.")
