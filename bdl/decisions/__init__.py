"""Decisions from predictives: utilities, expected utility, Bayes actions and their scoring.

Example (the route-choice lesson)::

    import bdl
    pred = bdl.Predictive.gaussian([25.0, 27.0, 37.0], [8.0, 2.0, 4.0])   # city, highway, forest
    u = bdl.decisions.threshold(30.0)              # arrive within 30 minutes
    bdl.decisions.expected_utility(pred, u)        # P(T <= 30) per route: [0.73, 0.93, 0.04]
    bdl.decisions.choose(pred, u)                  # 1: the highway
    bdl.decisions.evaluate(pred, [32.0, 25.0, 35.0], u)["regret"]   # 0.0
"""

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
    get,
    linear,
    selective,
    table,
    threshold,
)

__all__ = [
    "Utility",
    "threshold",
    "linear",
    "asymmetric",
    "table",
    "selective",
    "custom",
    "get",
    "available",
    "expected_utility",
    "monte_carlo_expected_utility",
    "choose",
    "evaluate",
    "realised_utility",
    "oracle_utility",
    "decision_calibration_curve",
    "calibration_from_values",
    "DecisionCalibration",
]
