"""Posterior approximators behind ``bdl.fit``."""

from bdl.approximators._diagnostics import chain_diagnostics, format_diagnostics
from bdl.approximators._ensemble import EnsembleOptions, fit_ensemble
from bdl.approximators._hmc import HMCOptions, NUTSOptions, WarmupOptions, fit_hmc, fit_nuts
from bdl.approximators._io import load, save
from bdl.approximators._map import fit_map
from bdl.approximators._method import Method, Posterior, option_names, options_from_kwargs
from bdl.approximators._options import TrainOptions
from bdl.approximators._posterior import ParticlePosterior
from bdl.approximators._registry import (
    available,
    fit,
    fit_seeds,
    make_options,
    options_class,
    register,
)
from bdl.approximators._sample_posterior import SamplePosterior
from bdl.approximators._sampler_common import SamplerOptions
from bdl.approximators._sgmcmc import (
    CyclicalOptions,
    SGHMCDynamics,
    SGHMCOptions,
    SGLDOptions,
    fit_cyclical_sgld,
    fit_sghmc,
    fit_sgld,
)
from bdl.approximators._vi import MeanField, VIOptions, VIPosterior, fit_vi
from bdl.approximators.laplace import LaplaceOptions, LaplacePosterior, fit_laplace

__all__ = [
    "SGHMCDynamics",
    "WarmupOptions",
    "EnsembleOptions",
    "Method",
    "Posterior",
    "make_options",
    "option_names",
    "options_class",
    "options_from_kwargs",
    "CyclicalOptions",
    "HMCOptions",
    "NUTSOptions",
    "SGHMCOptions",
    "SGLDOptions",
    "SamplePosterior",
    "SamplerOptions",
    "chain_diagnostics",
    "fit_cyclical_sgld",
    "fit_hmc",
    "fit_nuts",
    "fit_sghmc",
    "fit_sgld",
    "format_diagnostics",
    "LaplacePosterior",
    "LaplaceOptions",
    "MeanField",
    "ParticlePosterior",
    "TrainOptions",
    "VIPosterior",
    "VIOptions",
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
