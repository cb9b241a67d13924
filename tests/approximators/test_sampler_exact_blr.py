"""Every sampler with its DEFAULT options against the exact posterior of a conjugate Bayesian
linear regression, in float32 and float64; one small float64 run of each in the default suite.

The problem: 60 points, 3 features, y = x w + b + N(0, 0.5^2) with the noise scale fixed, an
isotropic N(0, 1/2) prior (precision 2) on (w, b). Checked: the parameter mean and covariance,
and at 20 test inputs the predictive mean and epistemic variance, against the closed form.

Tolerances and Monte Carlo error (the rule: the MC error of every checked statistic sits at
least 3x below its tolerance). With ESS the smallest effective sample size over the parameters
(``diagnostics["ess_min"]``), the MC sd of a mean, in posterior sd, is 1 / sqrt(ESS) and of a
variance, relatively, sqrt(2 / ESS); ``check`` asserts 3x these fit in the tolerances, so a
rerun on another machine cannot fail by chance (ESS with defaults, float32, seed 1: SGLD ~900,
SGHMC ~600, cyclical ~200, HMC ~3,300, NUTS ~3,700). The SG-MCMC methods have no Metropolis
correction: their variance may also be too wide by the step-size bias stated in
``_sgmcmc.py`` (at most ~5% along the stiffest direction), which ``VAR_BIAS`` allows for.
"""

import jax
import numpy as np
import pytest
from flax import nnx

import bdl

SIGMA, PREC, N = 0.5, 2.0, 60
METHODS = ("sgld", "sghmc", "cyclical_sgld", "hmc", "nuts")
# method -> (mean tolerance in posterior sd, variance tolerance, relative)
TOL = {"sgld": (0.15, 0.25), "sghmc": (0.2, 0.3), "cyclical_sgld": (0.25, 0.4),
       "hmc": (0.1, 0.12), "nuts": (0.1, 0.12)}
VAR_BIAS = {"sgld": 0.08, "sghmc": 0.08, "cyclical_sgld": 0.05, "hmc": 0.0, "nuts": 0.0}


def problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -0.5, 0.25]) + 0.3 + SIGMA * rng.normal(size=N)).astype(np.float32)
    phi = np.concatenate([x, np.ones((N, 1))], 1).astype(np.float64)
    cov = np.linalg.inv(phi.T @ phi / SIGMA**2 + PREC * np.eye(4))
    mean = cov @ phi.T @ y / SIGMA**2
    x_test = rng.normal(size=(20, 3)).astype(np.float32)
    return (x, y[:, None]), mean, cov, x_test


def fit(method, data, **options):
    return bdl.fit(method, nnx.Linear(3, 1, rngs=nnx.Rngs(0)),
                   bdl.likelihoods.Gaussian(scale=SIGMA), data, key=jax.random.key(1),
                   prior=bdl.priors.IsotropicGaussian(PREC), **options)


def draws_of(post):
    p = post.particles["net"]
    s = np.asarray(p["bias"]).shape[0]
    return np.concatenate([np.asarray(p["kernel"]).reshape(s, -1),
                           np.asarray(p["bias"]).reshape(s, -1)], 1).astype(np.float64)


def check(method, post, mean, cov, x_test):
    mean_tol, var_tol = TOL[method]
    ess = post.diagnostics["ess_min"]
    assert 3 / np.sqrt(ess) <= mean_tol, f"ESS {ess:.0f} too small for the mean tolerance"
    assert 3 * np.sqrt(2 / ess) <= var_tol - VAR_BIAS[method], f"ESS {ess:.0f} too small"
    draws = draws_of(post)
    # parameters: mean in posterior sd; covariance whitened by the exact one (identity)
    np.testing.assert_array_less(np.abs(draws.mean(0) - mean) / np.sqrt(np.diag(cov)), mean_tol)
    white = np.linalg.cholesky(np.linalg.inv(cov))
    w_cov = white.T @ np.cov(draws.T) @ white
    np.testing.assert_array_less(np.abs(w_cov - np.eye(4)), var_tol)
    # the predictive: mean (in epistemic sd) and epistemic variance at the test inputs
    phi = np.concatenate([x_test, np.ones((len(x_test), 1))], 1)
    f_mean, f_var = phi @ mean, np.einsum("ij,jk,ik->i", phi, cov, phi)
    pred = post.predict(x_test, key=jax.random.key(2))
    np.testing.assert_array_less(
        np.abs(np.asarray(pred.mean()).reshape(-1) - f_mean) / np.sqrt(f_var), mean_tol)
    np.testing.assert_array_less(
        np.abs(np.asarray(pred.epistemic_variance()).reshape(-1) / f_var - 1), var_tol)
    np.testing.assert_allclose(np.asarray(pred.aleatoric_variance()).reshape(-1), SIGMA**2,
                               rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
@pytest.mark.parametrize("method", METHODS)
def test_defaults_match_the_exact_blr_posterior(method, x64, recwarn):
    data, mean, cov, x_test = problem()
    with jax.enable_x64(x64):
        post = fit(method, data)
        check(method, post, mean, cov, x_test)
    assert not [w for w in recwarn if issubclass(w.category, bdl.DiagnosticsWarning)]


SMALL = {"sgld": dict(num_burnin=300, num_samples=50, thinning=10),
         "sghmc": dict(num_burnin=50, num_samples=50, thinning=2),
         "cyclical_sgld": dict(num_cycles=2, steps_per_cycle=200, num_samples=20, thinning=2),
         "hmc": dict(num_warmup=100, num_samples=50, num_integration_steps=4),
         "nuts": dict(num_warmup=100, num_samples=50, max_num_doublings=3)}


@pytest.mark.filterwarnings("ignore::bdl.DiagnosticsWarning")
@pytest.mark.parametrize("method", [
    "sgld", pytest.param("sghmc", marks=pytest.mark.slow),
    pytest.param("cyclical_sgld", marks=pytest.mark.slow), "hmc", "nuts"])
def test_every_sampler_runs_in_float64(method):
    """Under jax_enable_x64 (blackjax's adaptation once failed there: "cond branches must have
    equal output types"); a short run, near the exact posterior mean."""
    data, mean, cov, _ = problem()
    with jax.enable_x64(True):
        post = fit(method, data, num_chains=2, **SMALL[method])
    draws = draws_of(post)
    assert np.all(np.isfinite(draws))
    # 2 x 50 draws, ESS >= ~20: the mean's MC sd <~ 0.25 posterior sd; 1.0 sd is 4x that
    np.testing.assert_array_less(np.abs(draws.mean(0) - mean) / np.sqrt(np.diag(cov)), 1.0)
