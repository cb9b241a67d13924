"""Posterior approximators behind ``bdl.fit``."""

from bdl.approximators._ensemble import fit_ensemble
from bdl.approximators._io import load, save
from bdl.approximators._map import fit_map
from bdl.approximators._options import TrainOptions
from bdl.approximators._posterior import ParticlePosterior
from bdl.approximators._registry import available, fit, fit_seeds, register
from bdl.approximators._vi import MeanField, VIPosterior, fit_vi
from bdl.approximators.laplace import LaplacePosterior, fit_laplace

__all__ = [
    "MeanField",
    "LaplacePosterior",
    "ParticlePosterior",
    "TrainOptions",
    "VIPosterior",
    "available",
    "fit",
    "fit_ensemble",
    "fit_laplace",
    "fit_map",
    "fit_seeds",
    "fit_vi",
    "load",
    "save",
    "register",
]
