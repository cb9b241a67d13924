"""Scoring decisions: realised utility, oracle, regret, decision calibration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bdl
from bdl import decisions
from bdl.predictive import GaussianMixture

TRUTH = jnp.array([32.0, 25.0, 35.0])  # city, highway, forest


def _commute_simulation(n_days=20_000, seed=0, sigma=4.0):
    """Mean travel times per day and route, and outcomes drawn from N(mean, sigma)."""
    rng = np.random.default_rng(seed)
    mu = rng.uniform(20.0, 36.0, (n_days, 3))
    return mu, mu + sigma * rng.standard_normal(mu.shape)


def test_route_choice_point_predictors():
    u = decisions.select(decisions.threshold(30.0))
    tool_a = decisions.evaluate(bdl.Predictive.point([35.0, 25.0, 43.0]), TRUTH, u)
    tool_b = decisions.evaluate(bdl.Predictive.point([28.0, 32.0, 35.0]), TRUTH, u)
    assert tool_a == {
        "expected_utility": 1.0,
        "realised_utility": 1.0,
        "oracle_utility": 1.0,
        "regret": 0.0,
        "decision_ece": 0.0,
        "optimal_rate": 1.0,
    }
    assert tool_b["realised_utility"] == 0.0 and tool_b["regret"] == 1.0
    assert tool_b["decision_ece"] == 1.0 and tool_b["optimal_rate"] == 0.0


def test_decision_ece_small_when_calibrated_large_when_not():
    mu, y = _commute_simulation()
    u = decisions.select(decisions.threshold(30.0))
    calibrated = decisions.evaluate(bdl.Predictive.gaussian(mu, 4.0), y, u)
    # sampling noise of 10 bin frequencies over 20,000 days is ~0.005 (observed 0.002)
    assert calibrated["decision_ece"] < 0.015
    assert abs(calibrated["expected_utility"] - calibrated["realised_utility"]) < 0.02
    optimistic = decisions.evaluate(bdl.Predictive.gaussian(mu - 3.0, 4.0), y, u)
    overconfident = decisions.evaluate(bdl.Predictive.gaussian(mu, 1.0), y, u)
    # observed 0.079 and 0.089: both bet on P(on time) being higher than it is
    assert optimistic["decision_ece"] > 0.05
    assert overconfident["decision_ece"] > 0.05
    assert calibrated["regret"] <= min(optimistic["regret"], overconfident["regret"])


def test_decision_ece_for_a_newsvendor_and_for_selective_classification():
    mu, demand = _commute_simulation(seed=1)
    u = decisions.asymmetric(jnp.linspace(0.0, 60.0, 241), under=3.0, over=1.0)
    good = decisions.evaluate(bdl.Predictive.gaussian(mu[:, 0], 4.0), demand[:, 0], u)
    bad = decisions.evaluate(bdl.Predictive.gaussian(mu[:, 0], 0.5), demand[:, 0], u)
    assert abs(good["expected_utility"] - good["realised_utility"]) < 0.1
    assert good["decision_ece"] < 0.25 < 1.0 < bad["decision_ece"]  # utility units
    assert good["regret"] < bad["regret"]

    key_p, key_y = jax.random.split(jax.random.key(0))
    probs = jax.nn.softmax(2.0 * jax.random.normal(key_p, (20_000, 4)), axis=-1)
    labels = jax.random.categorical(key_y, jnp.log(probs))
    sel = decisions.selective(4, abstain_cost=0.3)
    calibrated = decisions.evaluate(bdl.Predictive.categorical(probs[None]), labels, sel)
    sharpened = jax.nn.softmax(4.0 * jnp.log(probs), axis=-1)
    overconfident = decisions.evaluate(bdl.Predictive.categorical(sharpened[None]), labels, sel)
    assert calibrated["decision_ece"] < 0.02 < 0.05 < overconfident["decision_ece"]


def test_calibration_curve_is_consistent_with_evaluate():
    mu, y = _commute_simulation(n_days=2_000)
    pred, u = bdl.Predictive.gaussian(mu - 1.0, 3.0), decisions.select(decisions.threshold(30.0))
    curve = decisions.decision_calibration_curve(pred, y, u, num_bins=8)
    assert curve.counts.shape == curve.predicted.shape == (8,)
    assert int(curve.counts.sum()) == 2_000
    np.testing.assert_allclose(curve.edges, np.linspace(0.0, 1.0, 9), atol=1e-6)
    filled = curve.counts > 0
    assert np.all(curve.predicted[filled] >= curve.edges[:-1][filled] - 1e-6)
    assert np.all(np.isnan(curve.predicted[~filled]))
    ece = decisions.evaluate(pred, y, u, num_bins=8)["decision_ece"]
    np.testing.assert_allclose(float(curve.ece), ece, rtol=1e-6)


def test_regret_and_optimal_rate_on_a_newsvendor():
    u = decisions.asymmetric(jnp.array([10.0, 20.0, 30.0]), under=2.0, over=1.0)
    pred = bdl.Predictive.point([20.0, 20.0])
    out = decisions.evaluate(pred, jnp.array([20.0, 30.0]), u)
    # day 1: order 20, demand 20 -> 0 (optimal); day 2: order 20, demand 30 -> -20, oracle 0
    assert out["realised_utility"] == -10.0 and out["oracle_utility"] == 0.0
    assert out["regret"] == 10.0 and out["optimal_rate"] == 0.5


def test_bad_outcomes_raise():
    u = decisions.select(decisions.threshold(30.0))
    pred = bdl.Predictive.gaussian([25.0, 27.0, 37.0], [8.0, 2.0, 4.0])
    with pytest.raises(ValueError, match="`y_true` has shape"):
        decisions.evaluate(pred, jnp.ones(2), u)
    with pytest.raises(ValueError, match="`y_true` contains 1 NaN"):
        decisions.evaluate(pred, jnp.array([1.0, jnp.nan, 3.0]), u)
    with pytest.raises(ValueError, match="`num_bins`"):
        decisions.evaluate(pred, TRUTH, u, num_bins=0)
    broken = GaussianMixture(jnp.full((1, 3), jnp.nan), jnp.ones((1, 3)), jnp.ones((1, 3)),
                             jnp.zeros((1, 3)))
    with pytest.raises(ValueError, match="`pred` gives non-finite"):
        decisions.evaluate(broken, TRUTH, u)

    cat = bdl.Predictive.categorical(jnp.full((1, 2, 3), 1 / 3))
    sel = decisions.selective(3, 0.2)
    with pytest.raises(ValueError, match="`y_true` must hold integer"):
        decisions.evaluate(cat, jnp.array([0.0, 1.0]), sel)
    with pytest.raises(ValueError, match=r"`y_true` labels must lie in \[0, 2\]"):
        decisions.evaluate(cat, jnp.array([0, 3]), sel)
