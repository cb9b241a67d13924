"""EVPI, risk-coverage (AURC) and decision curves (net benefit) against hand computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

import bdl
from bdl import decisions


def test_evpi_of_a_categorical_table_equals_the_hand_computation():
    probs = jnp.array([0.6, 0.3, 0.1])
    matrix = jnp.array([[1.0, -1.0, 0.0], [0.0, 2.0, -1.0]])  # [actions, classes]
    pred = bdl.Predictive.categorical(probs[None, None])  # one example
    # E[max_a u] = 0.6 * 1 + 0.3 * 2 + 0.1 * 0 = 1.2; max_a E[u] = max(0.3, 0.5) = 0.5
    np.testing.assert_allclose(decisions.evpi(pred, decisions.table(matrix)), [0.7], atol=1e-6)


def test_evpi_of_a_selection_over_joint_draws_equals_the_hand_computation():
    draws = jnp.array([[20.0, 40.0], [40.0, 20.0], [20.0, 20.0], [40.0, 40.0]])  # [4, K=2]
    u = decisions.select(decisions.threshold(30.0))
    # on time per draw: [1,0], [0,1], [1,1], [0,0] -> E[max] = 3/4; max E = 1/2
    evpi = decisions.evpi(bdl.Predictive.from_samples(draws), u)
    assert evpi.shape == () and float(evpi) == pytest.approx(0.25)


@pytest.mark.parametrize("u", [
    decisions.select(decisions.threshold(30.0)),
    decisions.act(decisions.threshold(30.0), cost=0.4),
    decisions.asymmetric(jnp.linspace(10.0, 50.0, 9), under=3.0),
])
def test_evpi_of_a_point_mass_is_zero(u):
    pred = bdl.Predictive.point(jnp.array([[35.0, 25.0, 43.0], [28.0, 32.0, 35.0]]))
    np.testing.assert_array_equal(decisions.evpi(pred, u), 0.0)


def test_evpi_by_monte_carlo_matches_the_closed_form_for_act():
    loc, t, c = jnp.array([8.0, 10.0, 13.0]), 10.0, 0.3
    pred = bdl.Predictive.gaussian(loc, 2.0)
    u = decisions.act(decisions.threshold(t, below=False), cost=c)
    with pytest.raises(ValueError, match="`key` is required"):
        decisions.evpi(pred, u)
    p = 1.0 - norm.cdf(t, np.asarray(loc), 2.0)
    exact = (1.0 - c) * p - np.maximum(p - c, 0.0)  # E[max(0, 1[y>t]-c)] - max(0, p - c)
    mc = decisions.evpi(pred, u, key=jax.random.key(0), num_samples=40_000)
    np.testing.assert_allclose(mc, exact, atol=5 * 0.5 / np.sqrt(40_000))


def test_aurc_of_a_perfect_ranking_equals_its_closed_form():
    n, m = 50, 12
    loss = np.zeros(n)
    loss[np.random.default_rng(0).choice(n, m, replace=False)] = 1.0
    confidence = 1.0 - loss + 0.01 * np.random.default_rng(1).uniform(size=n)  # errors last
    rc = decisions.risk_coverage_from_values(confidence, loss)
    closed = sum(j / (n - m + j) for j in range(1, m + 1)) / n
    assert float(rc.aurc) == pytest.approx(closed, rel=1e-6)
    np.testing.assert_allclose(rc.coverage, np.arange(1, n + 1) / n)
    assert np.all(rc.risk[: n - m] == 0.0) and float(rc.risk[-1]) == pytest.approx(m / n)
    # the large-N limit r + (1 - r) log(1 - r) (Geifman et al. 2019)
    big = np.repeat([0.0, 1.0], [7_500, 2_500])
    rc_big = decisions.risk_coverage_from_values(1.0 - big, big)
    r = 0.25
    assert float(rc_big.aurc) == pytest.approx(r + (1 - r) * np.log(1 - r), abs=1e-3)


def test_risk_coverage_ties_and_the_predictive_form():
    loss = jnp.array([1.0, 0.0, 0.0, 1.0])
    tied = decisions.risk_coverage_from_values(jnp.ones(4), loss)  # no ranking: flat at 1/2
    np.testing.assert_allclose(tied.risk, 0.5)
    probs = jnp.array([[0.9, 0.1], [0.2, 0.8], [0.55, 0.45], [0.3, 0.7]])
    labels = jnp.array([0, 0, 1, 1])
    pred = bdl.Predictive.categorical(probs[None])
    rc = decisions.risk_coverage_curve(pred, labels, decisions.table(jnp.eye(2)))
    ref = decisions.risk_coverage_from_values(probs.max(-1), probs.argmax(-1) != labels)
    np.testing.assert_allclose(rc.risk, ref.risk)
    np.testing.assert_allclose(rc.risk, [0.0, 0.5, 1 / 3, 0.5])  # kept: 0.9, 0.8, 0.7, 0.55
    with pytest.raises(ValueError, match="`loss` of shape"):
        decisions.risk_coverage_from_values(jnp.ones(3), jnp.ones(2))


def test_net_benefit_matches_the_formula():
    p = jnp.array([0.1, 0.4, 0.6, 0.9, 0.3])
    e = jnp.array([0, 1, 0, 1, 1])
    # p_t = 0.35: act on 0.4, 0.6, 0.9 -> TP 2, FP 1 of N 5
    nb = decisions.net_benefit(p, e, 0.35)
    assert float(nb) == pytest.approx(2 / 5 - 1 / 5 * 0.35 / 0.65)
    grid = jnp.array([0.0, 0.35, 0.95])
    np.testing.assert_allclose(decisions.net_benefit(p, e, grid),
                               [3 / 5 - 2 / 5 * 0.0, 2 / 5 - 1 / 5 * 0.35 / 0.65, 0.0], atol=1e-6)
    # the same through a classification predictive, with the reference strategies
    pred = bdl.Predictive.categorical(jnp.stack([1 - p, p], -1)[None])
    curve = decisions.decision_curve(pred, e, decisions.event(1), grid)
    np.testing.assert_allclose(curve.net_benefit, decisions.net_benefit(p, e, grid), atol=1e-6)
    np.testing.assert_allclose(curve.treat_all, 0.6 - 0.4 * grid / (1 - grid), atol=1e-6)
    np.testing.assert_array_equal(curve.treat_none, 0.0)
    # net benefit = realised utility of act(event, cost=p_t) / (1 - p_t)
    realised = decisions.evaluate(pred, e, decisions.act(decisions.event(1), cost=0.35))
    assert realised["realised_utility"] / 0.65 == pytest.approx(float(curve.net_benefit[1]))


def test_decision_curve_of_a_regression_predictive_and_bad_inputs():
    loc = jnp.array([150.0, 190.0, 230.0, 260.0])
    y = jnp.array([140.0, 210.0, 180.0, 270.0])
    pred = bdl.Predictive.gaussian(loc, 30.0)
    u = decisions.threshold(200.0, below=False)
    curve = decisions.decision_curve(pred, y, u)
    assert curve.thresholds.shape == curve.net_benefit.shape == (99,)
    p = 1.0 - norm.cdf(200.0, np.asarray(loc), 30.0)
    np.testing.assert_allclose(curve.net_benefit,
                               decisions.net_benefit(p, np.asarray(y) > 200.0, curve.thresholds),
                               atol=1e-6)
    with pytest.raises(ValueError, match="event's indicator"):
        decisions.decision_curve(pred, y, decisions.act(u, cost=0.2))
    with pytest.raises(ValueError, match="indicator of the event"):
        decisions.decision_curve(pred, y, decisions.linear())
    with pytest.raises(ValueError, match="`thresholds`"):
        decisions.net_benefit(p, np.ones(4), [0.5, 1.0])
    with pytest.raises(ValueError, match="`event` must hold 0 or 1"):
        decisions.net_benefit(p, np.full(4, 2.0), 0.5)
