"""CRPS against scoringrules' closed forms and ensemble estimators, and against sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scoringrules as sr
from hypothesis import given, settings
from hypothesis import strategies as st

from bdl import Predictive, metrics

SETTINGS = settings(max_examples=25, deadline=None)
BATCH = 6


def _mixture_params(seed: int, n_comp: int):
    rng = np.random.default_rng(seed)
    loc = rng.normal(0.0, 2.0, (n_comp, BATCH))
    scale = rng.uniform(0.2, 2.0, (n_comp, BATCH))
    weights = rng.dirichlet(np.ones(n_comp), BATCH).T  # [S, B]
    y = rng.normal(0.0, 3.0, BATCH)
    return loc, scale, weights, y


def test_gaussian_matches_scoringrules():
    rng = np.random.default_rng(0)
    loc, scale, y = rng.normal(size=50), rng.uniform(0.1, 3.0, 50), rng.normal(0.0, 2.0, 50)
    got = metrics.crps(Predictive.gaussian(loc, scale), y)
    want = sr.crps_normal(y, loc, scale, backend="numpy")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), n_comp=st.integers(1, 4))
def test_mixture_matches_scoringrules(seed, n_comp):
    loc, scale, weights, y = _mixture_params(seed, n_comp)
    got = metrics.crps(Predictive.gaussian_mixture(loc, scale, weights), y)
    want = sr.crps_mixnorm(y, loc, scale, weights, m_axis=0, backend="numpy")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1))
def test_one_component_and_duplicated_components_equal_the_gaussian(seed):
    loc, scale, _, y = _mixture_params(seed, 1)
    want = sr.crps_normal(y, loc[0], scale[0], backend="numpy")
    single = metrics.crps(Predictive.gaussian_mixture(loc, scale), y)
    doubled = metrics.crps(
        Predictive.gaussian_mixture(np.tile(loc, (3, 1)), np.tile(scale, (3, 1))), y
    )
    np.testing.assert_allclose(single, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(doubled, want, rtol=1e-4, atol=1e-5)


def test_mixture_closed_form_equals_energy_estimate_from_samples():
    """E|X - y| - E|X - X'| / 2 from 100k draws of pred.sample: standard error <0.5% here."""
    loc, scale, weights, y = _mixture_params(7, 4)
    pred = Predictive.gaussian_mixture(loc, scale, weights)
    draws = pred.sample(jax.random.key(1), 100_000)
    estimate = metrics.crps(Predictive.from_samples(draws), y)
    np.testing.assert_allclose(metrics.crps(pred, y), estimate, rtol=0.015)


def test_samples_crps_matches_scoringrules_energy_estimator():
    rng = np.random.default_rng(3)
    draws, y = rng.normal(size=(37, BATCH)), rng.normal(size=BATCH)
    got = metrics.crps(Predictive.from_samples(draws), y)
    want = sr.crps_ensemble(y, draws, m_axis=0, estimator="nrg", backend="numpy")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@SETTINGS
@given(
    draws=st.lists(st.floats(-100, 100, width=32), min_size=9, max_size=9),
    y=st.floats(-100, 100, width=32),
)
def test_samples_crps_property_matches_naive_pairwise(draws, y):
    x = np.asarray(draws, np.float64)
    naive = np.mean(np.abs(x - y)) - 0.5 * np.mean(np.abs(x[:, None] - x[None, :]))
    got = metrics.crps(Predictive.from_samples(np.asarray(draws, np.float32)[:, None]), [y])
    np.testing.assert_allclose(got, [naive], rtol=1e-4, atol=1e-3)
    assert float(got[0]) >= -1e-3


def test_point_crps_is_absolute_error():
    values, y = jnp.array([0.0, 1.0, -2.0]), jnp.array([0.5, 1.0, 1.0])
    np.testing.assert_allclose(metrics.crps(Predictive.point(values), y), [0.5, 0.0, 3.0])


def test_chunked_pairwise_term_matches_unchunked():
    loc, scale, weights, y = _mixture_params(11, 7)
    pred = Predictive.gaussian_mixture(loc, scale, weights)
    full = metrics.crps(pred, y)
    for chunk in (1, 3):
        np.testing.assert_allclose(metrics.crps(pred, y, chunk_size=chunk), full, rtol=1e-6)
    with pytest.raises(ValueError, match="chunk_size"):
        metrics.crps(pred, y, chunk_size=0)


def test_crps_jits_and_keeps_batch_shape():
    rng = np.random.default_rng(5)
    loc, scale = rng.normal(size=(3, 4, 2)), rng.uniform(0.5, 1.0, (3, 4, 2))
    pred, y = Predictive.gaussian_mixture(loc, scale), rng.normal(size=(4, 2))
    eager = metrics.crps(pred, y)
    assert eager.shape == (4, 2)
    np.testing.assert_allclose(jax.jit(metrics.crps)(pred, y), eager, rtol=1e-6)


def test_crps_rejects_classification_and_wrong_shape():
    with pytest.raises(ValueError, match="regression metric"):
        metrics.crps(Predictive.categorical(jnp.full((1, 3, 2), 0.5)), jnp.zeros(3, int))
    with pytest.raises(ValueError, match="`y` has shape"):
        metrics.crps(Predictive.gaussian(jnp.zeros(3), 1.0), jnp.zeros((3, 1)))
