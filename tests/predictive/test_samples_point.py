"""Empirical (samples) and point predictives."""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from bdl import Predictive


@settings(max_examples=30, deadline=None)
@given(
    n=st.sampled_from([2, 3, 10, 41]),  # few sample counts: one compilation each
    data=st.data(),
)
def test_samples_quantile_matches_numpy(n, data):
    draws = data.draw(st.lists(st.floats(-100.0, 100.0), min_size=2 * n, max_size=2 * n))
    draws = np.array(draws, np.float32).reshape(n, 2)
    q = np.array(data.draw(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3)), np.float32)
    got = Predictive.from_samples(draws).quantile(q[:, None])
    want = np.quantile(draws.astype(np.float64), q.astype(np.float64), axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


def test_samples_moments_cdf_and_log_prob():
    rng = np.random.default_rng(0)
    draws = rng.normal(1.0, 2.0, size=(2000, 3)).astype(np.float32)
    pred = Predictive.from_samples(draws)
    np.testing.assert_allclose(pred.mean(), draws.mean(0), rtol=1e-5)
    np.testing.assert_allclose(pred.variance(), draws.var(0), rtol=1e-4)
    np.testing.assert_allclose(pred.cdf(1.0), (draws <= 1.0).mean(0))
    # Gaussian kernel density estimate with Silverman's bandwidth
    y = np.array([[-3.0], [1.0], [4.0]])
    h = 1.06 * draws.std(0, ddof=1) * 2000**-0.2
    kde = scipy.stats.norm(draws[:, None], h).pdf(y).mean(0)
    np.testing.assert_allclose(pred.log_prob(y, broadcast=True), np.log(kde), rtol=1e-4)
    lower, upper = pred.interval(0.9)
    np.testing.assert_allclose(pred.cdf(upper) - pred.cdf(lower), 0.9, atol=2 / 2000)


def test_samples_sample_resamples_whole_draws(key):
    draws = jnp.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0]])
    out = Predictive.from_samples(draws).sample(key, 50)
    assert out.shape == (50, 2)
    np.testing.assert_array_equal(out[:, 1], out[:, 0] + 10.0)  # joint draws kept
    assert set(np.asarray(out[:, 0]).tolist()) == {0.0, 1.0, 2.0}


def test_identical_samples_have_finite_log_prob():
    pred = Predictive.from_samples(jnp.full((5, 2), 3.0))
    assert np.all(np.isfinite(pred.log_prob(3.0)))
    assert np.all(pred.variance() == 0.0)


def test_point_is_a_step(key):
    pred = Predictive.point(jnp.array([1.0, -2.0, 0.5]))
    assert pred.batch_shape == (3,) and pred.num_samples == 1
    np.testing.assert_array_equal(pred.cdf(jnp.array([0.999, -2.0, 0.6])), [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(pred.cdf(jnp.array([[-5.0], [5.0]])), [[0, 0, 0], [1, 1, 1]])
    for q in (0.0, 0.3, 1.0):
        np.testing.assert_array_equal(pred.quantile(q), [1.0, -2.0, 0.5])
    np.testing.assert_array_equal(pred.variance(), 0.0)
    np.testing.assert_array_equal(pred.std(), 0.0)
    np.testing.assert_array_equal(pred.epistemic_variance(), 0.0)
    np.testing.assert_array_equal(pred.mean(), [1.0, -2.0, 0.5])
    np.testing.assert_array_equal(
        pred.log_prob(jnp.array([1.0, 0.0, 0.5])), [np.inf, -np.inf, np.inf]
    )
    np.testing.assert_array_equal(pred.sample(key, 4), jnp.tile(pred.values, (4, 1)))
    lower, upper = pred.interval(0.9)
    np.testing.assert_array_equal(lower, pred.values)
    np.testing.assert_array_equal(upper, pred.values)


def test_point_of_integers_is_float():
    pred = Predictive.point([1, 2])
    assert jnp.issubdtype(pred.values.dtype, jnp.floating)
    assert pred.cdf(1).dtype == pred.values.dtype
    assert jax.tree.leaves(pred)[0] is pred.values
