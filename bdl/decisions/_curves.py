"""What decision-makers ask for beyond regret: risk-coverage curves and decision curves.

- Risk-coverage (selective decisions): act only on the most confident fraction of the cases
  and leave the rest to a human. The curve gives the mean loss of the ``k`` most confident
  decisions against their share ``k / N``; its area (AURC, Geifman et al. 2019) is the mean
  risk over all coverages, lower is better.
- Decision curves (Vickers & Elkin 2006): for a binary act/wait decision ("treat iff
  P(event) >= p_t"), the net benefit ``TP/N - FP/N * p_t / (1 - p_t)`` against the threshold
  probability ``p_t``, next to the "act for all" and "act for none" strategies. ``p_t``
  expresses the cost of acting: acting is worth it iff P(event) > cost, i.e. ``p_t`` is the
  ``cost`` of ``act(event, cost)``, and the net benefit is its realised utility over
  ``1 - p_t``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bdl._validation import as_float, check_finite
from bdl.decisions._evaluate import _check_outcomes, _decide
from bdl.decisions._expected import _expected, check_fit
from bdl.decisions._utilities import Utility
from bdl.predictive import Predictive

__all__ = [
    "RiskCoverage",
    "risk_coverage_from_values",
    "risk_coverage_curve",
    "DecisionCurve",
    "net_benefit",
    "decision_curve",
]


class RiskCoverage(NamedTuple):
    """A risk-coverage curve.

    Attributes:
      coverage: ``k / N`` for ``k = 1..N``, ``[N]``.
      risk: mean loss of the ``k`` most confident cases, ``[N]`` (cases of equal confidence
        count with their group's mean loss: the expectation over random tie-breaking).
      confidence: the confidence of the ``k``-th most confident case, ``[N]`` (descending).
      aurc: area under the curve, ``mean(risk)`` (scalar).
    """

    coverage: jax.Array
    risk: jax.Array
    confidence: jax.Array
    aurc: jax.Array


def risk_coverage_from_values(confidence, loss) -> RiskCoverage:
    """Risk-coverage curve of cases ranked by ``confidence`` (any shape, flattened) with the
    matching ``loss`` (same shape; e.g. 0/1 error or regret). Higher confidence is kept first.

    For 0/1 losses with ``m`` errors among ``N`` cases, a perfect ranking (every error less
    confident than every success) has ``AURC = (1/N) sum_{j=1..m} j / (N - m + j)``, which
    tends to ``r + (1 - r) log(1 - r)`` with ``r = m / N`` (Geifman et al. 2019).
    """
    confidence, loss = as_float(confidence), as_float(loss)
    if confidence.shape != loss.shape:
        raise ValueError(f"`loss` of shape {loss.shape} must match `confidence` of shape "
                         f"{confidence.shape}.")
    if confidence.size == 0:
        raise ValueError("`confidence` is empty; there is nothing to rank.")
    check_finite("confidence", confidence)
    check_finite("loss", loss)
    return _risk_coverage(jnp.ravel(confidence), jnp.ravel(loss))


@jax.jit
def _risk_coverage(confidence, loss) -> RiskCoverage:
    n = confidence.shape[0]
    order = jnp.argsort(-confidence, stable=True)
    conf, loss = confidence[order], loss[order]
    new = jnp.concatenate([jnp.ones(1, bool), conf[1:] != conf[:-1]])
    group = jnp.cumsum(new) - 1
    sums = jax.ops.segment_sum(loss, group, num_segments=n)
    counts = jax.ops.segment_sum(jnp.ones_like(loss), group, num_segments=n)
    tied = (sums / jnp.maximum(counts, 1.0))[group]  # each case's group mean
    k = jnp.arange(1, n + 1, dtype=loss.dtype)
    risk = jnp.cumsum(tied) / k
    return RiskCoverage(k / n, risk, conf, jnp.mean(risk))


def risk_coverage_curve(
    pred: Predictive,
    y_true,
    u: Utility,
    *,
    key: jax.Array | None = None,
    num_samples: int = 1000,
) -> RiskCoverage:
    """Risk-coverage curve of the Bayes decisions of ``pred`` under ``u``: cases ranked by the
    predicted expected utility of their chosen action, loss = their regret (oracle - realised).

    With ``table(jnp.eye(C))`` (utility 1 for the right class) this is the standard curve of
    selective classification: confidence = top-class probability, loss = 0/1 error. ``u`` is
    an action utility or a selection, and ``y_true`` has ``pred``'s batch shape, as in
    :func:`evaluate`. Give ``u`` no abstain action: the curve itself decides who abstains.
    """
    chosen_eu, realised, oracle = _decide(pred, y_true, u, key, num_samples)
    return _risk_coverage(jnp.ravel(chosen_eu), jnp.ravel(oracle - realised))


class DecisionCurve(NamedTuple):
    """A decision curve (Vickers & Elkin 2006).

    Attributes:
      thresholds: threshold probabilities ``p_t``, ``[T]``.
      net_benefit: of acting iff the predicted P(event) >= ``p_t``, ``[T]``.
      treat_all: of acting for every case, ``prevalence - (1 - prevalence) p_t / (1 - p_t)``.
      treat_none: of acting for none: zeros ``[T]``.
      prevalence: share of cases with the event (scalar).
    """

    thresholds: jax.Array
    net_benefit: jax.Array
    treat_all: jax.Array
    treat_none: jax.Array
    prevalence: jax.Array


def net_benefit(p_event, event, thresholds) -> jax.Array:
    """Net benefit ``TP/N - FP/N * p_t / (1 - p_t)`` of acting iff ``p_event >= p_t``.

    Args:
      p_event: predicted probabilities of the event, any shape ``[...]``, in [0, 1].
      event: what happened, 0/1 (or bool) of the same shape.
      thresholds: threshold probabilities ``p_t``, ``[T]`` (or a scalar), each in [0, 1).

    Returns:
      ``[T]`` (a scalar for a scalar ``thresholds``).
    """
    p, e, t = _binary_inputs(p_event, event, thresholds)
    return _net_benefit(p, e, jnp.atleast_1d(t)).reshape(t.shape)


def decision_curve(
    pred: Predictive,
    y_true,
    u: Utility,
    thresholds=None,
    *,
    key: jax.Array | None = None,
    num_samples: int = 1000,
) -> DecisionCurve:
    """Decision curve of "act iff P(event) >= p_t" for every batch element of ``pred``.

    Args:
      pred: the predictive, batch shape ``[*batch]`` (one case per element).
      y_true: what happened, ``pred``'s batch shape.
      u: the event as an outcome utility with values 0 or 1: ``threshold(t, below=False)``
        ("the disease progresses beyond t"), ``event(1)`` (class 1).
      thresholds: ``[T]`` threshold probabilities in [0, 1); default ``0.01, 0.02, ..., 0.99``.
      key, num_samples: Monte Carlo settings, used only where P(event) has no exact form.

    Returns:
      a :class:`DecisionCurve`.
    """
    if isinstance(u, Utility) and u.kind != "outcome":
        raise ValueError(f"`u` ({u.name}) must be the event's indicator as an outcome utility, "
                         "e.g. threshold(200.0, below=False) or event(1); the decision curve "
                         "sweeps the cost of act(u, cost=p_t) itself.")
    u = check_fit(pred, u)
    if u.bounds is None or u.bounds[0] < 0.0 or u.bounds[1] > 1.0:
        raise ValueError(f"`u` ({u.name}) must be an indicator of the event (values 0 or 1), "
                         "such as threshold(...) or event(...).")
    y_true = _check_outcomes(pred, y_true)
    p_event = _expected(pred, u, key, num_samples)
    happened = u(y_true)
    if thresholds is None:
        thresholds = jnp.linspace(0.01, 0.99, 99)
    p, e, t = _binary_inputs(p_event, happened, thresholds)
    t = jnp.atleast_1d(t)
    prevalence = jnp.mean(e)
    odds = t / (1.0 - t)
    return DecisionCurve(t, _net_benefit(p, e, t), prevalence - (1.0 - prevalence) * odds,
                         jnp.zeros_like(t), prevalence)


@jax.jit
def _net_benefit(p, e, t):
    treat = p[..., None] >= t  # [N, T]
    tp = jnp.mean(treat & (e[..., None] > 0.5), axis=0)
    fp = jnp.mean(treat & (e[..., None] <= 0.5), axis=0)
    return tp - fp * t / (1.0 - t)


def _binary_inputs(p_event, event, thresholds):
    p, e = as_float(p_event), as_float(event)
    t = as_float(thresholds)
    if p.shape != e.shape:
        raise ValueError(f"`event` of shape {e.shape} must match `p_event` of shape {p.shape}.")
    if p.size == 0:
        raise ValueError("`p_event` is empty; there is nothing to score.")
    if t.ndim > 1:
        raise ValueError(f"`thresholds` must be a scalar or 1-D [T]; got shape {t.shape}.")
    for name, x in (("p_event", p), ("event", e), ("thresholds", t)):
        check_finite(name, x)
    pn, en, tn = np.asarray(p), np.asarray(e), np.asarray(t)
    if np.any((pn < 0) | (pn > 1)):
        raise ValueError("`p_event` must hold probabilities in [0, 1].")
    if not np.all((en == 0) | (en == 1)):
        raise ValueError("`event` must hold 0 or 1 (did the event happen?).")
    if np.any((tn < 0) | (tn >= 1)):
        raise ValueError("`thresholds` must lie in [0, 1): at p_t = 1 acting is never worth it.")
    return jnp.ravel(p), jnp.ravel(e), t
