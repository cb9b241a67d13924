"""Predictive distributions: the one object every approximator returns."""

from bdl.predictive._base import Predictive
from bdl.predictive._categorical import Categorical
from bdl.predictive._mixture import GaussianMixture
from bdl.predictive._point import Point
from bdl.predictive._samples import Samples

__all__ = ["Predictive", "Point", "GaussianMixture", "Samples", "Categorical"]
