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
                       prior=bdl.priors.IsotropicGaussian(1.0), tune="marglik", tune_steps=400)
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
                   prior=bdl.priors.IsotropicGaussian(1.0), tune="marglik", tune_steps=600)
    np.testing.assert_allclose(float(post.prior_precision), prior, rtol=5e-3)
    np.testing.assert_allclose(post.noise_scale, sigma, rtol=1e-3)
    np.testing.assert_allclose(post.log_marginal_likelihood(), -neg(best), rtol=1e-6)


# ---------------------------------------------------------------- default options, end to end
# ``bdl.fit("laplace", ...)`` with nothing but a model, a fixed-noise likelihood and a prior:
# the MAP is trained inside (to convergence), the prior is the user's (no evidence tuning), and
# the default last-layer KFAC of one dense layer with one output is the full GGN, so every
# number must be the closed form. The mean is held to 1e-3 posterior sd (the MAP stage's
# stopping rule decides it, not the dtype); everything computed from the mode in closed form is
# held to a rounding tolerance of its dtype.

DTYPES = {  # name: (enable x64, parameter dtype, covariance / variance rtol, evidence rtol)
    "float32": (False, jnp.float32, 1e-5, 1e-5),
    "float64-data": (True, jnp.float32, 1e-10, 1e-8),  # x64 on, the model's default params
    "float64": (True, jnp.float64, 1e-10, 1e-8),
}


@pytest.mark.parametrize("name", list(DTYPES))
def test_default_options_give_the_exact_posterior_and_split(name):
    x64, param_dtype, rtol, lml_rtol = DTYPES[name]
    with jax.enable_x64(x64):  # every jax computation inside: the Predictive's methods too
        _check_default_fit(x64, param_dtype, rtol, lml_rtol)


def _check_default_fit(x64, param_dtype, rtol, lml_rtol):
    from flax import nnx

    prior = 2.0
    dtype = np.float64 if x64 else np.float32
    x, y = (a.astype(dtype) for a in _data())
    post = bdl.fit("laplace", nnx.Linear(3, 1, param_dtype=param_dtype, rngs=nnx.Rngs(0)),
                   bdl.likelihoods.Gaussian(scale=SIGMA), (x, y), key=jax.random.key(0),
                   prior=bdl.priors.IsotropicGaussian(prior))
    xt = (np.random.default_rng(1).normal(size=(7, 3)) * 3.0).astype(dtype)
    pred = post.predict(xt)
    key = jax.random.key(1)
    mc = post.predict(xt, predictive="mc", num_samples=4000, key=key)
    draws = post.sample(key, 4000)  # the very draws of the MC predictive
    cov_got = post.covariance()
    lml = post.log_marginal_likelihood()
    assert cov_got.dtype == pred.mean().dtype == pred.epistemic_variance().dtype == dtype
    assert mc.epistemic_variance().dtype == lml.dtype == dtype
    assert post.theta.dtype == param_dtype

    mean, cov = _closed_form(x.astype(np.float64), y.astype(np.float64), prior, SIGMA)
    # a prior the user passes is used as given: no evidence tuning moves it
    assert post.info["tune"] is None
    np.testing.assert_allclose(post.prior_precision, prior, rtol=1e-6)
    got = np.concatenate([np.ravel(post.mean["bias"]), np.ravel(post.mean["kernel"])])
    np.testing.assert_array_less(np.abs(got - mean) / np.sqrt(np.diag(cov)), 1e-3)
    np.testing.assert_allclose(cov_got, cov, rtol=rtol, atol=rtol * 1e-3)
    np.testing.assert_allclose(lml, _log_evidence(x.astype(np.float64), y.astype(np.float64),
                                                  prior, SIGMA), rtol=lml_rtol)

    phi = _design(xt.astype(np.float64))
    epistemic = np.einsum("ni,ij,nj->n", phi, cov, phi)
    np.testing.assert_array_less(np.abs(pred.mean() - phi @ mean) / np.sqrt(epistemic), 1e-3)
    np.testing.assert_allclose(pred.epistemic_variance(), epistemic, rtol=rtol)
    np.testing.assert_allclose(pred.aleatoric_variance(), np.full(7, SIGMA**2), rtol=rtol)
    np.testing.assert_allclose(pred.variance(), epistemic + SIGMA**2, rtol=rtol)
    np.testing.assert_allclose(pred.std() ** 2, epistemic + SIGMA**2, rtol=rtol)

    # the MC predictive splits the same way: its epistemic variance is phi^T Cov phi of its
    # own draws (exactly), which is J Sigma J^T up to Monte Carlo error (4,000 draws: ~2%)
    theta_s = np.concatenate([np.asarray(draws["bias"]), np.asarray(draws["kernel"])[..., 0]],
                             axis=1).astype(np.float64)
    sample_epistemic = np.einsum("ni,ij,nj->n", phi, np.cov(theta_s.T, bias=True), phi)
    np.testing.assert_allclose(mc.epistemic_variance(), sample_epistemic, rtol=1e-3)
    np.testing.assert_allclose(mc.epistemic_variance(), epistemic, rtol=0.12)
    np.testing.assert_allclose(mc.aleatoric_variance(), np.full(7, SIGMA**2), rtol=rtol)


def test_glm_split_survives_affine_and_take(x64):
    x, y = _data()
    mean, cov = _closed_form(x, y, 2.0, SIGMA)
    lik = bdl.likelihoods.Gaussian(scale=SIGMA)
    post = bdl.fit("laplace", _model(), lik, (x, y), key=jax.random.key(0), hessian="full",
                   subset="all", prior_precision=2.0, map_posterior=_map_posterior(x, mean, lik))
    pred = post.predict(x[:5])
    scaled = pred.affine(1.0, 3.0)
    np.testing.assert_allclose(scaled.epistemic_variance(), 9 * pred.epistemic_variance())
    np.testing.assert_allclose(scaled.aleatoric_variance(), np.full(5, 9 * SIGMA**2))
    np.testing.assert_allclose(scaled.mean(), 1.0 + 3.0 * pred.mean())
    np.testing.assert_allclose(pred.take(2).epistemic_variance(), pred.epistemic_variance()[2])
    # the distribution is the one Gaussian N(mean, epistemic + aleatoric)
    sd = np.sqrt(pred.epistemic_variance() + SIGMA**2)
    np.testing.assert_allclose(pred.log_prob(y[:5]), -0.5 * ((y[:5] - pred.mean()) / sd) ** 2
                               - np.log(sd) - 0.5 * np.log(2 * np.pi), atol=1e-7)  # log sqrt(2 pi): float32
    np.testing.assert_allclose(bdl.metrics.crps(pred, y[:5]),
                               bdl.metrics.crps(bdl.Predictive.gaussian(pred.mean(), sd), y[:5]),
                               rtol=1e-10)


# ---------------------------------------------------------------- heteroscedastic split
def _hetero_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    scale = np.log1p(np.exp(0.8 * x[:, 0] - 1.0)) + 1e-3
    y = x @ np.array([1.0, -0.5]) + 0.2 + scale * rng.normal(size=n)
    return x, y


def test_heteroscedastic_glm_split_is_the_linearised_one(x64):
    """A linear (mean, raw scale) model: the GLM predictive's epistemic variance is the mean
    block of ``J Sigma J^T`` and its aleatoric variance the expected noise under the
    linearised raw scale (Gauss-Hermite), up to the Monte Carlo error of the draws; the MC
    predictive over parameter draws splits the same way."""
    x, y = _hetero_data()
    lik = bdl.likelihoods.Gaussian("heteroscedastic")
    post = bdl.fit("laplace", linen.Dense(2, param_dtype=jnp.float64), lik, (x, y),
                   key=jax.random.key(0), prior=bdl.priors.IsotropicGaussian(1.0))
    xt = np.random.default_rng(1).normal(size=(6, 2)) * 2.0
    f, v = (np.asarray(a) for a in post.functional_variance(xt))
    s = 20_000
    glm = post.predict(xt, key=jax.random.key(2), num_samples=s)
    mc = post.predict(xt, predictive="mc", key=jax.random.key(3), num_samples=s)

    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    rho = f[:, 1:2] + np.sqrt(v[:, 1, 1:2]) * nodes[None]
    noise = np.sum(weights * (np.log1p(np.exp(rho)) + lik.min_scale) ** 2, axis=1) / np.sum(weights)
    mc_err = 5 * np.sqrt(2.0 / s)  # relative sd of a variance estimated from s draws, x5
    for pred in (glm, mc):
        np.testing.assert_allclose(pred.mean(), f[:, 0], atol=5 * np.sqrt(np.max(v[:, 0, 0]) / s))
        np.testing.assert_allclose(pred.epistemic_variance(), v[:, 0, 0], rtol=mc_err)
        np.testing.assert_allclose(pred.aleatoric_variance(), noise, rtol=mc_err)
    # Rao-Blackwellised: the GLM epistemic variance carries no MC error from the part of the
    # mean that is independent of the raw scale, so it is much closer than the MC predictive's
    glm_err = np.max(np.abs(glm.epistemic_variance() / v[:, 0, 0] - 1))
    assert glm_err < 0.01
    # the components keep the linearised mean / raw-scale covariance V_mr
    noise_var = np.asarray(glm.scale) ** 2 - np.asarray(glm.loc_var)  # the components' noise
    rho_s = np.log(np.expm1(np.sqrt(noise_var) - lik.min_scale))  # [S, N]
    loc_s = np.asarray(glm.loc)
    cov_mr = np.mean((loc_s - loc_s.mean(0)) * (rho_s - rho_s.mean(0)), axis=0)
    bound = 5 * np.sqrt(v[:, 0, 0] * v[:, 1, 1] / s)
    np.testing.assert_array_less(np.abs(cov_mr - v[:, 0, 1]), bound)


def test_homoscedastic_glm_split_on_a_network():
    """A nonlinear network: epistemic = diag(J Sigma J^T), aleatoric = the tuned noise."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(64, 1)).astype(np.float32)
    y = (np.sin(2 * x[:, 0]) + 0.1 * rng.normal(size=64)).astype(np.float32)
    model = bdl.models.MLP((8,), out=1, activation="tanh")
    lik = bdl.likelihoods.Gaussian()
    network = as_network(model, jnp.asarray(x[:1]))
    mp = ParticlePosterior("map", network, lik, jax.tree.map(
        lambda a: jnp.asarray(a)[None], {"net": network.init(jax.random.key(0)),
                                         "lik": {"log_scale": jnp.float32(np.log(0.3))}}))
    post = bdl.fit("laplace", model, lik, (x, y), key=jax.random.key(0), map_posterior=mp,
                   prior_precision=1.0, hessian="full", subset="all")
    xt = np.linspace(-4, 4, 9, dtype=np.float32)[:, None]
    pred = post.predict(xt)
    _, v = post.functional_variance(xt)
    np.testing.assert_allclose(pred.epistemic_variance(), v[:, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(pred.aleatoric_variance(), np.full(9, 0.3**2), rtol=1e-6)
    assert np.all(np.asarray(pred.epistemic_variance()) > 0)


# ---------------------------------------------------------------- tuning: warn or raise
def test_unconverged_tuning_warns_and_nan_raises(x64):
    x, y = _data()
    mean, _ = _closed_form(x, y, 2.0, SIGMA)
    lik = bdl.likelihoods.Gaussian(scale=SIGMA)
    fit = lambda mp, **kw: bdl.fit("laplace", _model(), lik, (x, y),  # noqa: E731
                                   key=jax.random.key(0), hessian="full", subset="all",
                                   map_posterior=mp, **kw)
    with pytest.warns(bdl.NotConvergedWarning, match="tune_steps"):
        post = fit(_map_posterior(x, mean, lik), prior_precision=1e4, tune_steps=3)
    assert post.info["tune"] == "marglik"  # a tune_* option asks for the tuning
    assert post.info["tune_gain"] > 1e-2 and np.all(np.isfinite(post.covariance()))
    with pytest.raises(bdl.NonFiniteError, match="not finite"):
        fit(_map_posterior(x, mean * np.nan, lik))


def test_a_prior_passed_on_purpose_is_kept_even_if_it_equals_the_default():
    """`prior=IsotropicGaussian(1.0)` given by the user is used as given (no tuning); only
    the library's default placeholder is tuned."""
    from bdl.approximators import LaplaceOptions, TrainOptions

    given = LaplaceOptions(train=TrainOptions(prior=bdl.priors.IsotropicGaussian(1.0)))
    assert given.resolved_tune() is None
    assert LaplaceOptions().resolved_tune() == "marglik"
