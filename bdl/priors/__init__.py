"""Priors over network parameters."""

from bdl.priors._gaussian import IsotropicGaussian, Prior

__all__ = ["IsotropicGaussian", "Prior"]
