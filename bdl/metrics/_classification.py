"""Classification metrics: accuracy, multi-class Brier score, top-label calibration (ECE).

Every function takes a classification ``Predictive`` with batch shape ``B`` and ``C`` classes
and integer labels ``y`` of shape ``B``; predictions are the posterior-averaged
``pred.probs()`` ``[*B, C]``. ``n_bins`` is a static Python int (under ``jit`` mark it static).
Argument checks run outside a jitted core, so eager calls compile once per shape.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bdl.metrics._checks import check_count, require_classification, targets
from bdl.predictive import Predictive


class ReliabilityDiagram(NamedTuple):
    """Top-label reliability diagram over equal-width confidence bins.

    Bin ``b`` holds the examples whose confidence (largest class probability) lies in
    ``(edges[b], edges[b + 1]]``.

    Attributes:
      confidence: mean confidence per bin, shape ``[n_bins]`` (NaN for an empty bin).
      accuracy: fraction of correct top-label predictions per bin, ``[n_bins]`` (NaN if empty).
      count: number of examples per bin, ``[n_bins]`` (float).
      edges: bin edges ``0, 1/n_bins, ..., 1``, shape ``[n_bins + 1]``.
    """

    confidence: jax.Array
    accuracy: jax.Array
    count: jax.Array
    edges: jax.Array


def accuracy(pred: Predictive, y) -> jax.Array:
    """Whether the most probable class equals ``y``: float 0/1, shape ``B``."""
    require_classification(pred, "accuracy")
    return _accuracy(pred, targets(pred, y))


def brier(pred: Predictive, y) -> jax.Array:
    """Multi-class Brier score ``sum_c (p_c - 1[y = c])^2`` (Brier 1950), shape ``B``.

    Summed (not averaged) over classes, so it lies in [0, 2]; lower is better.
    """
    require_classification(pred, "brier")
    return _brier(pred, targets(pred, y))


def reliability_diagram(pred: Predictive, y, n_bins: int = 15) -> ReliabilityDiagram:
    """Data of a top-label reliability diagram, pooled over every example.

    Args:
      pred: a classification predictive with batch shape ``B``.
      y: integer labels, shape ``B``.
      n_bins: number of equal-width confidence bins on [0, 1].

    Returns:
      ``ReliabilityDiagram(confidence, accuracy, count [n_bins], edges [n_bins + 1])``.
    """
    _check_binned(pred, n_bins, "reliability_diagram")
    count, conf_sum, correct_sum = _bin_sums(pred, targets(pred, y), n_bins=n_bins)
    occupied = count > 0
    safe = jnp.where(occupied, count, 1.0)
    return ReliabilityDiagram(
        confidence=jnp.where(occupied, conf_sum / safe, jnp.nan),
        accuracy=jnp.where(occupied, correct_sum / safe, jnp.nan),
        count=count,
        edges=jnp.linspace(0.0, 1.0, n_bins + 1, dtype=count.dtype),
    )


def ece(pred: Predictive, y, n_bins: int = 15) -> jax.Array:
    """Top-label expected calibration error (Guo et al. 2017), scalar.

    ``sum_b (n_b / N) |accuracy_b - confidence_b|`` over the equal-width bins of
    ``reliability_diagram``. A calibrated classifier scores a small positive value that
    shrinks like ``1 / sqrt(N)`` (finite-sample bias), not exactly 0.

    Args:
      pred: a classification predictive with batch shape ``B``.
      y: integer labels, shape ``B``.
      n_bins: number of equal-width confidence bins on [0, 1].

    Returns:
      Scalar array in [0, 1].
    """
    _check_binned(pred, n_bins, "ece")
    count, conf_sum, correct_sum = _bin_sums(pred, targets(pred, y), n_bins=n_bins)
    return jnp.sum(jnp.abs(correct_sum - conf_sum)) / jnp.sum(count)


def _check_binned(pred, n_bins, metric):
    require_classification(pred, metric)
    check_count("n_bins", n_bins)


@jax.jit
def _accuracy(pred, y):
    probs = pred.probs()
    return (jnp.argmax(probs, axis=-1) == y).astype(probs.dtype)


@jax.jit
def _brier(pred, y):
    probs = pred.probs()
    onehot = jax.nn.one_hot(y, probs.shape[-1], dtype=probs.dtype)
    return jnp.sum((probs - onehot) ** 2, axis=-1)


@functools.partial(jax.jit, static_argnames="n_bins")
def _bin_sums(pred, y, *, n_bins: int):
    """Per-bin example count, confidence sum and correct-prediction sum, each ``[n_bins]``."""
    y = y.reshape(-1)
    probs = pred.probs()
    probs = probs.reshape(-1, probs.shape[-1])
    confidence = jnp.max(probs, axis=-1)
    correct = (jnp.argmax(probs, axis=-1) == y).astype(confidence.dtype)
    # Right-closed bins (k / n_bins, (k + 1) / n_bins]; confidence 0 joins the first bin.
    index = jnp.clip(jnp.ceil(confidence * n_bins).astype(jnp.int32) - 1, 0, n_bins - 1)

    def per_bin(values):
        return jax.ops.segment_sum(values, index, num_segments=n_bins)

    return per_bin(jnp.ones_like(confidence)), per_bin(confidence), per_bin(correct)
