"""Conformal baselines: marginal coverage on exchangeable data, and its limits."""

import jax.numpy as jnp
import numpy as np
import pytest

from bdl import Predictive, conformal


def _data(seed, n):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, n)
    group = (rng.random(n) < 0.5).astype(float)  # noisy group 1, quiet group 0
    y = np.sin(3 * x) + rng.standard_normal(n) * (0.1 + 0.9 * group)
    return x, group, y.astype(np.float32)


def _base(x, group=None, adaptive=False):
    """A fixed (already "trained") base model: right mean, one shared or a per-group scale."""
    scale = 0.5 + 0.0 * x if not adaptive else 0.1 + 0.9 * group
    return Predictive.gaussian(jnp.asarray(np.sin(3 * x)), jnp.asarray(scale))


def _covered(lo, hi, y):
    return np.asarray((y >= lo) & (y <= hi))


def test_conformal_quantile_rank():
    scores = jnp.arange(1.0, 10.0)  # n = 9
    assert float(conformal.conformal_quantile(scores, 0.5)) == 5.0  # ceil(10 * 0.5) = 5th
    assert float(conformal.conformal_quantile(scores, 0.9)) == 9.0
    assert np.isinf(float(conformal.conformal_quantile(scores, 0.95)))  # ceil(9.5) = 10 > 9
    both = conformal.conformal_quantile(scores, np.array([0.5, 0.9]))
    np.testing.assert_array_equal(np.asarray(both), [5.0, 9.0])


@pytest.mark.parametrize("method", ["split", "cqr"])
def test_marginal_coverage_on_exchangeable_data(method):
    """Averaged over 40 independent calibration/test draws, coverage is within 1% of the
    nominal 90% (the guarantee is >= 0.9, and <= 0.9 + 1/(n+1) without ties)."""
    fn = conformal.split_conformal_interval if method == "split" else conformal.cqr_interval
    rates = []
    for seed in range(40):
        x, g, y = _data(seed, 600)
        lo, hi = fn(_base(x[:200], g[:200]), y[:200], _base(x[200:], g[200:]), 0.9)
        rates.append(_covered(lo, hi, y[200:]).mean())
    assert 0.895 <= np.mean(rates) <= 0.9 + 1 / 201 + 0.005


def test_coverage_is_marginal_not_per_group():
    """Pooled split conformal over-covers the quiet group and under-covers the noisy one;
    CQR on a base that knows the per-group spread covers both."""
    x, g, y = _data(0, 20000)
    cal, test = slice(0, 10000), slice(10000, None)
    lo, hi = conformal.split_conformal_interval(_base(x[cal]), y[cal], _base(x[test]), 0.9)
    hit, group = _covered(lo, hi, y[test]), g[test].astype(bool)
    assert abs(hit.mean() - 0.9) < 0.01
    assert hit[~group].mean() > 0.99 and hit[group].mean() < 0.85
    lo, hi = conformal.cqr_interval(_base(x[cal], g[cal], True), y[cal],
                                    _base(x[test], g[test], True), 0.9)
    hit = _covered(lo, hi, y[test])
    assert abs(hit[~group].mean() - 0.9) < 0.02 and abs(hit[group].mean() - 0.9) < 0.02


@pytest.mark.parametrize("method", ["split", "cqr"])
def test_predictive_distribution_is_calibrated(method):
    """The conformal predictives are Predictives: their quantiles are calibrated at every
    level, their central 90% interval covers ~90%, and they work with batch [n, 3]."""
    x, g, y = _data(1, 6600)
    shape = (-1, 3)
    cal = _base(x[:600].reshape(shape), g[:600].reshape(shape), True)
    test = _base(x[600:].reshape(shape), g[600:].reshape(shape), True)
    y_cal, y_test = y[:600].reshape(shape), y[600:].reshape(shape)
    if method == "split":
        pred = conformal.split_conformal(cal, y_cal, test)
        assert pred.num_samples == 600
    else:
        pred = conformal.conformalised_quantiles(cal, y_cal, test, num_levels=100)
        assert pred.num_samples == 100
    assert pred.batch_shape == (2000, 3)
    lo, hi = pred.interval(0.9)
    assert abs(_covered(lo, hi, y_test).mean() - 0.9) < 0.02
    for p in (0.1, 0.5, 0.8):
        below = np.mean(np.asarray(y_test) <= np.asarray(pred.quantile(p)))
        assert abs(below - p) < 0.03


def test_split_conformal_uses_only_the_mean():
    cal = Predictive.gaussian(jnp.zeros(5), jnp.ones(5))
    test = Predictive.point(jnp.array([10.0, 20.0]))
    pred = conformal.split_conformal(cal, jnp.array([-2.0, -1.0, 0.0, 1.0, 2.0]), test)
    np.testing.assert_allclose(np.sort(np.asarray(pred.samples[:, 1])), [18, 19, 20, 21, 22])


def test_errors_name_the_argument():
    cal = Predictive.gaussian(jnp.zeros(5), jnp.ones(5))
    with pytest.raises(ValueError, match="y_cal"):
        conformal.split_conformal(cal, jnp.zeros(4), cal)
    with pytest.raises(ValueError, match="y_cal"):
        conformal.split_conformal(cal, jnp.array([0.0, 1.0, jnp.nan, 0.0, 0.0]), cal)
    with pytest.raises(ValueError, match="level"):
        conformal.cqr_interval(cal, jnp.zeros(5), cal, 1.0)
    with pytest.raises(ValueError, match="cal"):
        conformal.split_conformal(Predictive.categorical(jnp.ones((1, 5, 2)) / 2),
                                  jnp.zeros(5), cal)
