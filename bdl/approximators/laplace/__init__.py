"""Laplace approximations: full / diagonal / KFAC GGN, all weights or the last layer, GLM and
MC predictives, marginal-likelihood tuning of prior precision and noise."""

from bdl.approximators.laplace._fit import (
    HESSIANS,
    SUBSETS,
    LaplaceOptions,
    Stages,
    build_stages,
    fit_laplace,
)
from bdl.approximators.laplace._posterior import LaplacePosterior

__all__ = ["HESSIANS", "LaplaceOptions", "LaplacePosterior", "SUBSETS", "Stages", "build_stages",
           "fit_laplace"]
