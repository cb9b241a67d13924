"""The two kinds of decision are explicit: select one of K alternatives, or act per example.
A utility that does not fit the predictive, or does not say what is chosen, raises."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

import bdl
from bdl import decisions

LOC = jnp.array([6.0, 9.0, 10.5, 12.0, 14.0])  # a [N] regression predictive: 5 test points
SCALE = 2.0
Y = jnp.array([7.0, 11.0, 9.0, 12.5, 15.0])
T, COST = 10.0, 0.3


def test_readme_pattern_per_example_gives_bayes_actions_and_hand_regret():
    pred = bdl.Predictive.gaussian(LOC, SCALE)
    u = decisions.act(decisions.threshold(T, below=False), cost=COST)
    p = 1.0 - norm.cdf(T, np.asarray(LOC), SCALE)  # P(y > 10) per test point
    action = np.asarray(decisions.choose(pred, u))
    np.testing.assert_array_equal(action, (p > COST).astype(int))  # [0, 1, 1, 1, 1]
    np.testing.assert_allclose(decisions.expected_utility(pred, u),
                               np.stack([np.zeros(5), p - COST], -1), atol=1e-6)
    event = np.asarray(Y) > T
    realised = np.where(action == 1, event - COST, 0.0)
    oracle = np.maximum(event - COST, 0.0)
    out = decisions.evaluate(pred, Y, u)
    assert out["realised_utility"] == pytest.approx(realised.mean(), abs=1e-6)
    assert out["oracle_utility"] == pytest.approx(oracle.mean(), abs=1e-6)
    assert out["regret"] == pytest.approx((oracle - realised).mean(), abs=1e-6)
    assert out["regret"] == pytest.approx(0.3 / 5, abs=1e-6)  # point 3: acted, no event
    assert out["optimal_rate"] == pytest.approx(np.mean(realised == oracle))


def test_bare_outcome_utility_on_test_points_raises():
    pred, u = bdl.Predictive.gaussian(LOC, SCALE), decisions.threshold(T)
    for call in (lambda: decisions.evaluate(pred, Y, u), lambda: decisions.choose(pred, u),
                 lambda: decisions.evpi(pred, u), lambda: decisions.risk_coverage_curve(pred, Y, u),
                 lambda: decisions.decision_calibration_curve(pred, Y, u)):
        with pytest.raises(ValueError, match=r"`u` \(1\[y <= 10\]\).*select.*act"):
            call()
    # its expectation per element is still well defined
    np.testing.assert_allclose(decisions.expected_utility(pred, u), pred.cdf(T), atol=1e-6)


def test_classification_table_on_a_regression_predictive_raises():
    pred = bdl.Predictive.gaussian(LOC, SCALE)
    with pytest.raises(ValueError, match=r"`u` \(table\) is a utility of class labels.*regression"):
        decisions.evaluate(pred, Y, decisions.table(jnp.eye(3)), key=jax.random.key(0))
    with pytest.raises(ValueError, match="utility of class labels"):
        decisions.expected_utility(pred, decisions.selective(3, 0.1), key=jax.random.key(0))


def test_regression_utilities_on_a_classification_predictive_raise():
    cat = bdl.Predictive.categorical(jnp.full((1, 4, 3), 1 / 3))
    for u in (decisions.act(decisions.threshold(1.0)), decisions.asymmetric(jnp.arange(3.0)),
              decisions.select(decisions.linear())):
        with pytest.raises(ValueError, match="real-valued outcome.*classification"):
            decisions.choose(cat, u)
    with pytest.raises(ValueError, match=r"`pred` has 3 classes but `u` \(table\).*2"):
        decisions.choose(cat, decisions.table(jnp.eye(2)))
    with pytest.raises(ValueError, match="`classes` holds label 5"):
        decisions.choose(cat, decisions.act(decisions.event(5)))


def test_select_route_choice_and_any_axis():
    pred = bdl.Predictive.gaussian([25.0, 27.0, 37.0], [8.0, 2.0, 4.0])  # Tool C
    on_time = decisions.select(decisions.threshold(30.0))
    assert int(decisions.choose(pred, on_time)) == 1  # the highway
    assert decisions.evaluate(pred, [32.0, 25.0, 35.0], on_time)["regret"] == 0.0
    assert int(decisions.choose(pred, decisions.select(decisions.linear()))) == 0  # city
    # [days, routes] against the same days transposed [routes, days] with axis=0
    rng = np.random.default_rng(0)
    mu, y = rng.uniform(20, 36, (40, 3)), rng.uniform(20, 36, (40, 3))
    days = decisions.evaluate(bdl.Predictive.gaussian(mu, 4.0), y, on_time)
    by_route = decisions.select(decisions.threshold(30.0), axis=0)
    routes_first = bdl.Predictive.gaussian(mu.T, 4.0)
    np.testing.assert_array_equal(decisions.choose(routes_first, by_route),
                                  decisions.choose(bdl.Predictive.gaussian(mu, 4.0), on_time))
    assert decisions.evaluate(routes_first, y.T, by_route) == pytest.approx(days)
    assert decisions.expected_utility(routes_first, by_route).shape == (40, 3)


def test_act_on_classes_and_on_a_sample_predictive():
    probs = jnp.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    cat = bdl.Predictive.categorical(probs[None])
    u = decisions.act(decisions.event(1), cost=0.3)
    np.testing.assert_array_equal(decisions.choose(cat, u), [0, 1, 1])
    draws = jnp.array([[1.0, 5.0], [3.0, 6.0], [4.0, 0.0], [9.0, 1.0]])  # [4 draws, 2]
    samples = bdl.Predictive.from_samples(draws)
    v = decisions.act(decisions.threshold(3.5, below=False), cost=0.4)
    np.testing.assert_allclose(decisions.expected_utility(samples, v)[:, 1], [0.1, 0.1])


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: decisions.select(decisions.asymmetric(jnp.arange(3.0))), ValueError,
         "action utility"),
        (lambda: decisions.select(decisions.threshold(1.0), axis=1.5), TypeError, "`axis`"),
        (lambda: decisions.act(decisions.selective(3, 0.1), cost=0.2), ValueError, "`cost`"),
        (lambda: decisions.act(decisions.select(decisions.threshold(1.0))), ValueError,
         "selection"),
        (lambda: decisions.act(decisions.threshold(1.0), cost=jnp.ones(2)), ValueError, "`cost`"),
        (lambda: decisions.act(decisions.threshold(1.0), cost=jnp.nan), ValueError, "`cost`"),
        (lambda: decisions.act(lambda y: y), TypeError, "`u`"),
        (lambda: decisions.event(-1), ValueError, "`classes`"),
        (lambda: decisions.custom(lambda y: y, task="images"), ValueError, "task"),
    ],
)
def test_bad_decision_arguments_raise(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_select_needs_an_alternatives_axis():
    u = decisions.select(decisions.threshold(30.0), axis=2)
    with pytest.raises(ValueError, match="`axis` 2 of select"):
        decisions.choose(bdl.Predictive.gaussian(jnp.ones((4, 3)), 1.0), u)
    with pytest.raises(ValueError, match=r"`pred` has batch shape \(\)"):
        decisions.choose(bdl.Predictive.gaussian(25.0, 8.0), decisions.select(u))
    # an action utility decides per element, even for a scalar batch
    assert decisions.choose(bdl.Predictive.gaussian(25.0, 8.0),
                            decisions.act(decisions.threshold(30.0))).shape == ()
