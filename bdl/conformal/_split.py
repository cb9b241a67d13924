"""Split conformal prediction around a predictive's mean (absolute / signed residuals)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bdl.conformal._scores import calibration_pair, check_level, conformal_quantile
from bdl.predictive import Predictive


def split_conformal_interval(cal: Predictive, y_cal, test: Predictive, level: float = 0.9
                             ) -> tuple[jax.Array, jax.Array]:
    """The split-conformal interval ``mean(x) +- q`` with ``q`` the conformal quantile of the
    absolute calibration residuals ``|y_i - mean(x_i)|`` (Lei et al. 2018).

    Calibration residuals are pooled over every element of ``cal``'s batch, so the guarantee
    ``P(y in interval) >= level`` holds on average over the pooled population (e.g. over days
    *and* routes), not for every route or input.

    Args:
      cal: predictive on the calibration inputs, batch shape ``C`` (e.g. ``[n_cal, routes]``).
      y_cal: calibration outcomes, shape ``C``.
      test: predictive on the test inputs, batch shape ``T``.
      level: nominal coverage in (0, 1).

    Returns:
      ``(lower, upper)``, each of shape ``T``.
    """
    y_cal = calibration_pair(cal, y_cal, test)
    level = check_level(level)
    scores = jnp.abs(y_cal - cal.mean()).reshape(-1)
    q = conformal_quantile(scores, level)
    centre = test.mean()
    return centre - q, centre + q


def split_conformal(cal: Predictive, y_cal, test: Predictive) -> Predictive:
    """The split-conformal predictive distribution: ``mean(x) + r`` over the signed
    calibration residuals ``r_i = y_i - mean(x_i)`` (a split conformal predictive system,
    Vovk et al. 2019).

    Every quantile level ``p`` is calibrated marginally, ``P(y <= Q_p(x)) ~ p`` up to
    ``1 / n_cal``, so its central intervals cover on average over the pooled calibration
    population. Its spread is the same for every input: it does not adapt to where the noise
    is large (see :func:`conformalised_quantiles` for an adaptive variant).

    Args:
      cal: predictive on the calibration inputs (only its mean is used), batch shape ``C``
        with ``prod(C) >= 2``.
      y_cal: calibration outcomes, shape ``C``.
      test: predictive on the test inputs (only its mean is used), batch shape ``T``.

    Returns:
      A ``Samples`` predictive with ``prod(C)`` draws, batch shape ``T``.
    """
    y_cal = calibration_pair(cal, y_cal, test)
    residuals = (y_cal - cal.mean()).reshape(-1)  # [n]
    centre = test.mean()
    draws = centre[None] + residuals.reshape((-1,) + (1,) * centre.ndim)
    return Predictive.from_samples(draws)
