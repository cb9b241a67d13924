"""Per-example regression scores against scipy and scoringrules."""

import jax.numpy as jnp
import numpy as np
import pytest
import scoringrules as sr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from bdl import Predictive, metrics

SETTINGS = settings(max_examples=25, deadline=None)


def _gaussian():
    rng = np.random.default_rng(0)
    loc, scale, y = rng.normal(size=40), rng.uniform(0.3, 2.0, 40), rng.normal(0.0, 2.0, 40)
    return Predictive.gaussian(loc, scale), loc, scale, y


gaussian = pytest.fixture(_gaussian)


def test_gaussian_nll_matches_scipy(gaussian):
    pred, loc, scale, y = gaussian
    want = -stats.norm.logpdf(y, loc, scale)
    np.testing.assert_allclose(metrics.nll(pred, y), want, rtol=1e-5, atol=1e-5)


def test_mixture_nll_matches_scoringrules():
    rng = np.random.default_rng(1)
    loc, scale = rng.normal(size=(3, 20)), rng.uniform(0.3, 2.0, (3, 20))
    weights, y = rng.dirichlet(np.ones(3), 20).T, rng.normal(size=20)
    got = metrics.nll(Predictive.gaussian_mixture(loc, scale, weights), y)
    want = sr.logs_mixnorm(y, loc, scale, weights, mc_axis=0, backend="numpy")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_errors_of_the_mean(gaussian):
    pred, loc, _, y = gaussian
    np.testing.assert_allclose(metrics.squared_error(pred, y), (loc - y) ** 2, rtol=1e-5)
    np.testing.assert_allclose(metrics.absolute_error(pred, y), np.abs(loc - y), rtol=1e-5)


@SETTINGS
@given(q=st.floats(0.01, 0.99))
def test_pinball_loss_matches_scoringrules(q):
    pred, loc, scale, y = _gaussian()
    want = sr.quantile_score(y, stats.norm.ppf(q, loc, scale), q, backend="numpy")
    np.testing.assert_allclose(metrics.pinball_loss(pred, y, q), want, rtol=1e-4, atol=1e-4)


def test_pinball_loss_broadcasts_levels(gaussian):
    pred, _, _, y = gaussian
    q = jnp.array([0.1, 0.5, 0.9])[:, None]
    out = metrics.pinball_loss(pred, y, q)
    assert out.shape == (3, 40)
    np.testing.assert_allclose(out[1], metrics.pinball_loss(pred, y, 0.5), rtol=1e-6)


@SETTINGS
@given(level=st.floats(0.05, 0.98))
def test_interval_score_matches_scoringrules(level):
    pred, loc, scale, y = _gaussian()
    lower, upper = stats.norm.interval(level, loc, scale)
    want = sr.interval_score(y, lower, upper, 1.0 - level, backend="numpy")
    np.testing.assert_allclose(metrics.interval_score(pred, y, level), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(metrics.interval_width(pred, level), upper - lower, rtol=1e-4)


def test_interval_score_of_samples_uses_empirical_quantiles():
    rng = np.random.default_rng(2)
    draws, y = rng.normal(size=(50, 8)), rng.normal(0.0, 2.0, 8)
    lower, upper = np.quantile(draws, [0.05, 0.95], axis=0)
    want = sr.interval_score(y, lower, upper, 0.1, backend="numpy")
    got = metrics.interval_score(Predictive.from_samples(draws), y, 0.9)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@SETTINGS
@given(t=st.floats(-4.0, 4.0))
def test_threshold_brier_matches_scoringrules(t):
    pred, loc, scale, y = _gaussian()
    want = sr.brier_score((y <= t).astype(float), stats.norm.cdf(t, loc, scale), backend="numpy")
    np.testing.assert_allclose(metrics.threshold_brier(pred, y, t), want, rtol=1e-4, atol=1e-5)


def test_point_predictor_scores():
    pred, y = Predictive.point(jnp.array([1.0, 2.0])), jnp.array([0.0, 2.0])
    np.testing.assert_allclose(metrics.pinball_loss(pred, y, 0.25), [0.75, 0.0])
    np.testing.assert_allclose(metrics.interval_score(pred, y, 0.8), [10.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(metrics.threshold_brier(pred, y, 0.5), [1.0, 0.0])
    assert np.isinf(metrics.nll(pred, y)[0]) and metrics.nll(pred, y)[0] > 0


@pytest.mark.parametrize(
    "call",
    [
        lambda p, y: metrics.pinball_loss(p, y, 0.0),
        lambda p, y: metrics.pinball_loss(p, y, 1.5),
        lambda p, y: metrics.interval_score(p, y, 1.0),
        lambda p, y: metrics.interval_width(p, -0.1),
        lambda p, y: metrics.coverage(p, y, float("nan")),
    ],
)
def test_levels_outside_the_open_unit_interval_are_rejected(gaussian, call):
    pred, _, _, y = gaussian
    with pytest.raises(ValueError, match="`(q|level)`"):
        call(pred, y)


def test_regression_scores_reject_classification_predictives():
    pred = Predictive.categorical(jnp.full((1, 4, 3), 1.0 / 3.0))
    with pytest.raises(ValueError, match="regression metric"):
        metrics.interval_score(pred, jnp.zeros(4, int))
