"""bdl: Bayesian deep learning in JAX/Flax with decision-aware evaluation."""

from bdl import (
    approximators,
    conformal,
    data,
    decisions,
    likelihoods,
    metrics,
    models,
    priors,
    sweeps,
    training,
)
from bdl._warnings import DiagnosticsWarning, NonFiniteError, NotConvergedWarning
from bdl.approximators import available, fit, fit_seeds
from bdl.predictive import Predictive

__all__ = [
    "DiagnosticsWarning",
    "NonFiniteError",
    "NotConvergedWarning",
    "Predictive",
    "approximators",
    "conformal",
    "data",
    "decisions",
    "available",
    "fit",
    "fit_seeds",
    "likelihoods",
    "metrics",
    "models",
    "priors",
    "sweeps",
    "training",
]
__version__ = "0.1.0"
