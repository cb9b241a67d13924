"""Decisions from predictives: utilities, expected utility, Bayes actions and their scoring.

Two kinds of decision, always stated, never guessed from the array shape:

- ``select(u, axis=-1)``: pick ONE of the alternatives along a batch axis (routes);
- action utilities: decide for EVERY batch element (each patient, each test point):
  ``act(u, cost)`` (act or wait), ``asymmetric`` (order quantity), ``table``/``selective``
  (classify or abstain), ``custom(fn, actions)``.

``threshold`` serves both (the route-choice lesson, then a per-patient rule)::

    import bdl
    from bdl import decisions

    pred = bdl.Predictive.gaussian([25.0, 27.0, 37.0], [8.0, 2.0, 4.0])   # city, highway, forest
    on_time = decisions.select(decisions.threshold(30.0))   # the route most likely on time
    decisions.expected_utility(pred, on_time)       # P(T <= 30) per route: [0.73, 0.93, 0.04]
    decisions.choose(pred, on_time)                 # 1: the highway
    decisions.evaluate(pred, [32.0, 25.0, 35.0], on_time)["regret"]   # 0.0

    patients = bdl.Predictive.gaussian([150.0, 210.0, 260.0], 40.0)   # [N] regression
    treat = decisions.act(decisions.threshold(200.0, below=False), cost=0.2)
    decisions.choose(patients, treat)               # per patient: 1 iff P(y > 200) > 0.2
    decisions.evpi(patients, treat)                 # value of knowing y, per patient

A bare outcome utility (``threshold(30.0)``) gives its expectation per batch element in
``expected_utility``; ``choose``, ``evaluate`` and the curves refuse it, since it does not say
which of the two decisions is meant. Beyond regret: :func:`evpi`, :func:`risk_coverage_curve`
(AURC) and :func:`decision_curve` (net benefit).
"""

from bdl.decisions._choice import act, select
from bdl.decisions._curves import (
    DecisionCurve,
    RiskCoverage,
    decision_curve,
    net_benefit,
    risk_coverage_curve,
    risk_coverage_from_values,
)
from bdl.decisions._evaluate import (
    DecisionCalibration,
    calibration_from_values,
    decision_calibration_curve,
    evaluate,
    oracle_utility,
    realised_utility,
)
from bdl.decisions._expected import choose, expected_utility, monte_carlo_expected_utility
from bdl.decisions._utilities import (
    Utility,
    asymmetric,
    available,
    custom,
    event,
    get,
    linear,
    selective,
    table,
    threshold,
)
from bdl.decisions._value import evpi

__all__ = [
    "Utility",
    "threshold",
    "linear",
    "event",
    "asymmetric",
    "table",
    "selective",
    "custom",
    "select",
    "act",
    "get",
    "available",
    "expected_utility",
    "monte_carlo_expected_utility",
    "choose",
    "evaluate",
    "realised_utility",
    "oracle_utility",
    "evpi",
    "decision_calibration_curve",
    "calibration_from_values",
    "DecisionCalibration",
    "risk_coverage_curve",
    "risk_coverage_from_values",
    "RiskCoverage",
    "decision_curve",
    "net_benefit",
    "DecisionCurve",
]
