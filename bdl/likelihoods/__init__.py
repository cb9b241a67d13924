"""Likelihoods: log-likelihood for training, network output -> Predictive for prediction."""

from bdl.likelihoods._base import Likelihood
from bdl.likelihoods._categorical import Categorical
from bdl.likelihoods._gaussian import Gaussian

__all__ = ["Likelihood", "Gaussian", "Categorical"]
