"""Gaussian mixture (and single Gaussian) against scipy / numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from bdl import Predictive

QS = np.array([0.001, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999], np.float32)


@st.composite
def mixtures(draw):
    """A random mixture with S in 1..8 components, batch shape (2,), and probabilities q."""
    s = draw(st.integers(1, 8))
    floats = lambda lo, hi, n: st.lists(st.floats(lo, hi), min_size=n, max_size=n)
    loc = np.array(draw(floats(-50.0, 50.0, 2 * s)), np.float32).reshape(s, 2)
    scale = np.array(draw(floats(0.05, 20.0, 2 * s)), np.float32).reshape(s, 2)
    raw = np.array(draw(floats(0.01, 1.0, s)), np.float64)
    q = np.array(draw(floats(0.001, 0.999, 4)), np.float32).reshape(4, 1)
    return loc, scale, (raw / raw.sum()).astype(np.float32), q


@jax.jit  # one compilation per number of components, not one per eager op and example
def _roundtrip(pred, q):
    x = pred.quantile(q)
    return x, pred.cdf(x), pred.log_prob(x, broadcast=True)


@settings(max_examples=30, deadline=None)
@given(mixtures())
def test_cdf_inverts_quantile(args):
    loc, scale, weights, q = args
    x, cdf, log_prob = _roundtrip(Predictive.gaussian_mixture(loc, scale, weights), q)
    assert x.shape == (4, 2)
    # float32 resolution: the cdf moves by density * spacing(x) between adjacent floats.
    tol = 1e-5 + 4 * np.exp(np.float64(log_prob)) * np.spacing(np.abs(np.asarray(x)))
    err = np.abs(np.float64(cdf) - q)
    assert np.all(err <= tol), (err, tol)


def test_mixture_cdf_and_log_prob_match_scipy():
    rng = np.random.default_rng(0)
    loc = rng.normal(size=(4, 3)).astype(np.float32) * 3
    scale = rng.uniform(0.3, 2.0, size=(4, 3)).astype(np.float32)
    w = rng.dirichlet(np.ones(4)).astype(np.float32)
    pred = Predictive.gaussian_mixture(loc, scale, w)
    y = rng.normal(size=(5, 3)).astype(np.float32) * 4
    comps = scipy.stats.norm(loc[:, None], scale[:, None])  # [S, 1, 3] against y [5, 3]
    want_cdf = np.einsum("s,sqb->qb", w, comps.cdf(y))
    want_logp = np.log(np.einsum("s,sqb->qb", w, comps.pdf(y)))
    np.testing.assert_allclose(pred.cdf(y), want_cdf, atol=2e-6)
    np.testing.assert_allclose(pred.log_prob(y, broadcast=True), want_logp, rtol=1e-5, atol=1e-5)


def test_gaussian_matches_scipy():
    loc = np.array([-1.0, 0.0, 2.5], np.float32)
    scale = np.array([0.5, 1.0, 3.0], np.float32)
    pred, ref = Predictive.gaussian(loc, scale), scipy.stats.norm(loc, scale)
    y = np.array([-2.0, 0.1, 10.0], np.float32)
    np.testing.assert_allclose(pred.log_prob(y, broadcast=True), ref.logpdf(y), rtol=1e-5)
    np.testing.assert_allclose(pred.cdf(y), ref.cdf(y), atol=1e-6)
    np.testing.assert_allclose(pred.entropy(), ref.entropy(), rtol=1e-6)
    np.testing.assert_allclose(pred.mean(), loc)
    np.testing.assert_allclose(pred.variance(), scale**2, rtol=1e-6)
    np.testing.assert_allclose(pred.epistemic_variance(), 0.0)
    q = QS[:, None]
    np.testing.assert_allclose(pred.quantile(q), ref.ppf(q), rtol=1e-5, atol=2e-5)
    assert pred.quantile(0.0).tolist() == [-np.inf] * 3
    assert pred.quantile(1.0).tolist() == [np.inf] * 3


def test_scalar_gaussian_broadcasts_against_batch():
    pred = Predictive.gaussian(0.0, jnp.ones(4))
    assert pred.batch_shape == (4,) and pred.num_samples == 1
    assert pred.cdf(0.0).shape == (4,)


@pytest.mark.parametrize("num_copies", [1, 3])
def test_mixture_of_identical_components_equals_gaussian(num_copies, key):
    loc = jnp.array([0.3, -2.0])
    scale = jnp.array([1.5, 0.2])
    gauss = Predictive.gaussian(loc, scale)
    mix = Predictive.gaussian_mixture(
        jnp.stack([loc] * num_copies), jnp.stack([scale] * num_copies)
    )
    y = jnp.array([[0.0, -2.1], [4.0, 1.0]])
    for method, arg, kw in [
        ("mean", (), {}),
        ("variance", (), {}),
        ("log_prob", (y,), {"broadcast": True}),
        ("cdf", (y,), {}),
        ("quantile", (QS[:, None],), {}),
    ]:
        np.testing.assert_allclose(
            getattr(mix, method)(*arg, **kw), getattr(gauss, method)(*arg, **kw), rtol=1e-5,
            atol=1e-5,
        )
    draws = np.asarray(mix.sample(key, 4000))
    for b in range(2):
        p = scipy.stats.kstest(draws[:, b], scipy.stats.norm(loc[b], scale[b]).cdf).pvalue
        assert p > 1e-3


def test_mixture_moments_match_numpy():
    rng = np.random.default_rng(1)
    loc = rng.normal(size=(5, 4)).astype(np.float32)
    scale = rng.uniform(0.1, 2.0, size=(5, 4)).astype(np.float32)
    w = rng.dirichlet(np.ones(5), size=4).T.astype(np.float32)  # [S, batch] weights
    pred = Predictive.gaussian_mixture(loc, scale, w)
    mean = (w * loc).sum(0)
    alea = (w * scale**2).sum(0)
    epi = (w * (loc - mean) ** 2).sum(0)
    np.testing.assert_allclose(pred.mean(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.aleatoric_variance(), alea, rtol=1e-5)
    np.testing.assert_allclose(pred.epistemic_variance(), epi, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.variance(), alea + epi, rtol=1e-5)
    np.testing.assert_allclose(pred.std(), np.sqrt(alea + epi), rtol=1e-5)


def test_sample_moments_match(key):
    loc = jnp.array([[-3.0, 0.0, 5.0], [2.0, 0.5, 5.0], [0.0, 1.0, -5.0]])
    scale = jnp.array([[0.5, 1.0, 0.1], [1.0, 2.0, 0.1], [0.3, 0.5, 0.1]])
    pred = Predictive.gaussian_mixture(loc, scale, jnp.array([0.2, 0.5, 0.3]))
    n = 100_000
    draws = np.asarray(pred.sample(key, n), np.float64)
    assert draws.shape == (n, 3)
    var = np.asarray(pred.variance())
    # mean within 4 standard errors; variance within 3% (about 4 standard errors here)
    np.testing.assert_array_less(np.abs(draws.mean(0) - pred.mean()), 4 * np.sqrt(var / n))
    np.testing.assert_allclose(draws.var(0), var, rtol=0.03)


def test_sample_shares_component_across_batch(key):
    # equal weights across the batch: a draw comes from one posterior sample for all elements
    pred = Predictive.gaussian_mixture(jnp.array([[-10.0, -10.0], [10.0, 10.0]]), 0.1)
    draws = pred.sample(key, 500)
    assert np.all(np.sign(draws[:, 0]) == np.sign(draws[:, 1]))
    assert 0.4 < float(jnp.mean(draws[:, 0] > 0)) < 0.6
    # batch-dependent weights: each marginal still follows its own weights
    w = jnp.array([[0.9, 0.2], [0.1, 0.8]])
    pred = Predictive.gaussian_mixture(jnp.array([[-10.0, -10.0], [10.0, 10.0]]), 0.1, w)
    frac_pos = np.asarray(jnp.mean(pred.sample(key, 20_000) > 0, axis=0))
    np.testing.assert_allclose(frac_pos, [0.1, 0.8], atol=0.015)


def test_zero_weight_component_is_ignored(key):
    pred = Predictive.gaussian_mixture(jnp.array([0.0, 100.0]), 1.0, jnp.array([1.0, 0.0]))
    gauss = Predictive.gaussian(0.0, 1.0)
    np.testing.assert_allclose(pred.log_prob(0.5), gauss.log_prob(0.5), rtol=1e-6)
    np.testing.assert_allclose(pred.quantile(0.9), gauss.quantile(0.9), rtol=1e-5)
    assert float(jnp.max(pred.sample(key, 1000))) < 50.0


@pytest.mark.parametrize("level", [0.5, 0.8, 0.9, 0.99])
def test_interval_covers_level(level):
    pred = Predictive.gaussian_mixture(
        jnp.array([[-1.0, 0.0], [3.0, 0.1]]), jnp.array([[0.5, 1.0], [2.0, 0.01]])
    )
    lower, upper = pred.interval(level)
    np.testing.assert_allclose(pred.cdf(upper) - pred.cdf(lower), level, atol=1e-5)
    np.testing.assert_allclose(pred.cdf(lower), (1 - level) / 2, atol=1e-5)


def test_entropy_of_mixture_is_not_defined():
    with pytest.raises(NotImplementedError, match="closed form"):
        Predictive.gaussian_mixture(jnp.zeros((2, 3)), 1.0).entropy()
    with pytest.raises(NotImplementedError, match="probs"):
        Predictive.gaussian(0.0, 1.0).probs()


def test_loc_var_is_epistemic_and_widens_the_component():
    """A component with an uncertain mean: N(loc, scale^2 + loc_var); the noise is aleatoric,
    loc_var epistemic, and affine maps both."""
    loc = jnp.array([[1.0, 2.0], [3.0, 2.0]])
    pred = Predictive.gaussian_mixture(loc, 0.5, loc_var=jnp.array([[0.09, 0.0], [0.16, 0.0]]))
    np.testing.assert_allclose(pred.aleatoric_variance(), [0.25, 0.25], rtol=1e-6)
    np.testing.assert_allclose(pred.epistemic_variance(), [1.0 + 0.125, 0.0], atol=1e-6)
    single = Predictive.gaussian_mixture(jnp.array([[0.0]]), 0.6, loc_var=jnp.array([[0.64]]))
    np.testing.assert_allclose(single.log_prob(jnp.array([0.3])),
                               scipy.stats.norm(0.0, 1.0).logpdf(0.3), rtol=1e-6)
    moved = single.affine(1.0, 2.0)
    np.testing.assert_allclose(moved.epistemic_variance(), [4 * 0.64], rtol=1e-6)
    np.testing.assert_allclose(moved.aleatoric_variance(), [4 * 0.36], rtol=1e-6)
