"""Conformal baselines that return a ``Predictive``, so they are scored like every method.

Split conformal prediction (Vovk et al. 2005; Lei et al. 2018) fits a model on one part of
the data and calibrates it on another: for exchangeable calibration and test points the
calibrated intervals cover with probability at least ``level`` *on average over the
population the calibration set pools*: over all inputs (and, for a ``[days, routes]``
batch, over all routes), not for a given route or input.

Two baselines, each a function ``(cal, y_cal, test) -> Predictive`` of a base predictive on
the calibration inputs, the calibration outcomes and the base predictive on the test inputs:

- :func:`split_conformal`: the base *mean* plus the empirical distribution of the signed
  calibration residuals (a split conformal predictive system). Same spread everywhere.
- :func:`conformalised_quantiles`: conformalised quantile regression (CQR) at every level of
  a grid, from the base predictive's quantiles (e.g. a heteroscedastic network): adaptive.

Both return ``Predictive.from_samples`` draws (the residual-shifted means / the corrected
quantiles), so CRPS, NLL (kernel density), P(T <= t) and decisions work on them unchanged.
:func:`split_conformal_interval` and :func:`cqr_interval` give the classical intervals with
the exact finite-sample guarantee; :func:`conformal_quantile` is the quantile they share.

Example:
  >>> import jax.numpy as jnp
  >>> from bdl import Predictive, conformal
  >>> cal = Predictive.point(jnp.zeros(99)); test = Predictive.point(jnp.zeros(5))
  >>> pred = conformal.split_conformal(cal, jnp.linspace(-1.0, 1.0, 99), test)
  >>> pred.batch_shape, pred.num_samples
  ((5,), 99)
"""

from bdl.conformal._cqr import conformalised_quantiles, cqr_interval, quantile_levels
from bdl.conformal._scores import conformal_quantile
from bdl.conformal._split import split_conformal, split_conformal_interval

__all__ = [
    "conformal_quantile",
    "conformalised_quantiles",
    "cqr_interval",
    "quantile_levels",
    "split_conformal",
    "split_conformal_interval",
]
