"""Laplace on Bayesian linear regression, where it is exact: posterior, predictive, evidence.

A linear model with a Gaussian prior and Gaussian noise has a Gaussian posterior, and the
GGN of a linear model is its Hessian, so the Laplace approximation (full or KFAC; one dense
layer with one output makes KFAC exact too) must equal the closed form, in float64 to
rtol 1e-4. The mode is given (``map_posterior``), so MAP training error does not enter.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen
from scipy import optimize

import bdl
from bdl.approximators import ParticlePosterior
from bdl.models import as_network

SIGMA = 0.5


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 0.3 + SIGMA * rng.normal(size=n)
    return x, y


def _design(x):
    # ravel_pytree order of {"bias": [1], "kernel": [3, 1]}: bias first
    return np.concatenate([np.ones((len(x), 1)), x], axis=1)


def _closed_form(x, y, prior, sigma):
    phi = _design(x)
    precision = phi.T @ phi / sigma**2 + prior * np.eye(phi.shape[1])
    cov = np.linalg.inv(precision)
    return cov @ phi.T @ y / sigma**2, cov


def _log_evidence(x, y, prior, sigma):
    phi = _design(x)
    cov = sigma**2 * np.eye(len(y)) + phi @ phi.T / prior
    sign, logdet = np.linalg.slogdet(cov)
    return -0.5 * (y @ np.linalg.solve(cov, y) + logdet + len(y) * np.log(2 * np.pi))


def _model():
    return linen.Dense(1, param_dtype=jnp.float64)


def _map_posterior(x, mean, lik, log_scale=None):
    network = as_network(_model(), jnp.asarray(x[:1]))
    net = {"bias": jnp.asarray(mean[:1])[None], "kernel": jnp.asarray(mean[1:, None])[None]}
    lik_params = {} if log_scale is None else {"log_scale": jnp.asarray([log_scale])}
    return ParticlePosterior("map", network, lik, {"net": net, "lik": lik_params})


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("hessian, subset", [("full", "all"), ("kfac", "all"),
                                             ("kfac", "last_layer")])
def test_blr_posterior_predictive_and_evidence_are_exact(x64, hessian, subset):
    x, y = _data()
    prior = 2.0
    mean, cov = _closed_form(x, y, prior, SIGMA)
    lik = bdl.likelihoods.Gaussian(scale=SIGMA)
    post = bdl.fit("laplace", _model(), lik, (x, y), key=jax.random.key(0), hessian=hessian,
                   subset=subset, prior_precision=prior,
                   map_posterior=_map_posterior(x, mean, lik))
    np.testing.assert_allclose(post.covariance(), cov, rtol=1e-4, atol=1e-12)
    got_mean = np.concatenate([post.mean["bias"], post.mean["kernel"][:, 0]])
    np.testing.assert_allclose(got_mean, mean, rtol=1e-10)
    np.testing.assert_allclose(post.log_marginal_likelihood(), _log_evidence(x, y, prior, SIGMA),
                               rtol=1e-6)

    xt = np.random.default_rng(1).normal(size=(7, 3)) * 3.0
    phi = _design(xt)
    pred = post.predict(xt)
    np.testing.assert_allclose(pred.mean(), phi @ mean, rtol=1e-6)
    np.testing.assert_allclose(pred.variance(), np.einsum("ni,ij,nj->n", phi, cov, phi)
                               + SIGMA**2, rtol=1e-4)

    # parameter draws: the MC predictive's moments approach the same numbers
    mc = post.predict(xt, predictive="mc", num_samples=4000, key=jax.random.key(1))
    np.testing.assert_allclose(mc.mean(), phi @ mean,
                               atol=4 * float(np.sqrt(np.max(pred.variance()) / 4000)))
    np.testing.assert_allclose(mc.variance(), pred.variance(), rtol=0.1)


def test_marglik_tuning_finds_the_evidence_maximising_prior_precision(x64):
    x, y = _data()
    lik = bdl.likelihoods.Gaussian(scale=SIGMA)
    grid = np.logspace(-3, 3, 3001)
    evidence = np.array([_log_evidence(x, y, g, SIGMA) for g in grid])
    best = grid[np.argmax(evidence)]
    assert 1e-3 < best < 1e3  # an interior optimum

    def tuned(at):
        mean, _ = _closed_form(x, y, at, SIGMA)
        post = bdl.fit("laplace", _model(), lik, (x, y), key=jax.random.key(0), hessian="full",
                       subset="all", map_posterior=_map_posterior(x, mean, lik),
                       prior=bdl.priors.IsotropicGaussian(1.0), tune_steps=400)
        return float(post.prior_precision)

    # at its own optimum the mode's evidence is stationary (envelope theorem): exact recovery
    np.testing.assert_allclose(tuned(best), best, rtol=3e-3)
    # from a mode fitted with another prior (theta* held fixed) it lands close by
    np.testing.assert_allclose(tuned(1.0), best, rtol=0.05)


def test_marglik_tunes_prior_precision_and_noise_jointly(x64):
    x, y = _data(n=80, seed=3)

    def neg(v):
        return -_log_evidence(x, y, np.exp(v[0]), np.exp(v[1]))

    best = optimize.minimize(neg, np.zeros(2), method="Nelder-Mead",
                             options={"xatol": 1e-8, "fatol": 1e-10}).x
    prior, sigma = np.exp(best)
    mean, _ = _closed_form(x, y, prior, sigma)
    lik = bdl.likelihoods.Gaussian()
    post = bdl.fit("laplace", _model(), lik, (x, y), key=jax.random.key(0), hessian="kfac",
                   subset="all", map_posterior=_map_posterior(x, mean, lik, 0.0),
                   prior=bdl.priors.IsotropicGaussian(1.0), tune_steps=600)
    np.testing.assert_allclose(float(post.prior_precision), prior, rtol=5e-3)
    np.testing.assert_allclose(post.noise_scale, sigma, rtol=1e-3)
    np.testing.assert_allclose(post.log_marginal_likelihood(), -neg(best), rtol=1e-6)
