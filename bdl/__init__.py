"""bdl: Bayesian deep learning in JAX/Flax with decision-aware evaluation."""

from bdl.predictive import Predictive

__all__ = ["Predictive"]
__version__ = "0.1.0"
