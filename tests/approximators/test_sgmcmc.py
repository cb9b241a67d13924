"""SGLD, SGHMC and cyclical SG-MCMC: exact-posterior checks on Bayesian linear regression
(looser tolerances than HMC: a small but finite step and minibatch noise bias the
variance), R-hat on a case built to fail, checkpoint/resume, schedules, option errors.

Stated tolerances on BLR (N=100, minibatches of 25, 4 vmapped chains, fixed seeds):
- SGLD (step 1e-4) and SGHMC (step 1e-3, friction 10): mean within 0.25 posterior sd,
  variances within 30%.
- cyclical SGLD (8 chains x 10 cycles, draws at the cycle ends): mean within 0.35 sd,
  variances within 50% (few effectively independent draws per cycle).
"""

import blackjax
import flax.linen as nn
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import bdl
from bdl.approximators._sgmcmc import CyclicalOptions, cyclical_schedule, kernel_key

SIGMA, PRIOR_PRECISION = 0.5, 1.0


def blr_problem(n=100, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (x @ np.array([1.0, -0.5]) + 0.3 + SIGMA * rng.normal(size=n)).astype(np.float32)
    phi = np.concatenate([x, np.ones((n, 1))], axis=1).astype(np.float64)
    cov = np.linalg.inv(phi.T @ phi / SIGMA**2 + PRIOR_PRECISION * np.eye(3))
    return (x, y), cov @ phi.T @ y / SIGMA**2, cov


def blr_fit(method, data, model=None, **options):
    return bdl.fit(method, model or nn.Dense(1), bdl.likelihoods.Gaussian(scale=SIGMA), data,
                   key=jax.random.key(0), prior=bdl.priors.IsotropicGaussian(PRIOR_PRECISION),
                   **options)


def weights(post):
    p = post.particles["net"]
    return np.concatenate([np.asarray(p["kernel"])[:, :, 0], np.asarray(p["bias"])], axis=1)


def check_moments(post, mean, cov, mean_tol, var_rtol):
    draws, sd = weights(post), np.sqrt(np.diag(cov))
    np.testing.assert_array_less(np.abs(draws.mean(0) - mean) / sd, mean_tol)
    np.testing.assert_allclose(draws.var(0), np.diag(cov), rtol=var_rtol)


@pytest.fixture(scope="module")
def blr():
    return blr_problem()


SGLD_BLR = dict(step_size=1e-4, batch_size=25, num_chains=4, num_burnin=1000, num_samples=500,
                thinning=20, chunk_steps=1100)  # 11,000 steps: 10 chunks of 1,100


@pytest.fixture(scope="module")
def sgld_post(blr):
    return blr_fit("sgld", blr[0], **SGLD_BLR)


def test_sgld_approximates_the_blr_posterior(blr, sgld_post):
    _, mean, cov = blr
    post = sgld_post
    assert post.num_particles == 2000 and post.num_chains == 4
    check_moments(post, mean, cov, mean_tol=0.25, var_rtol=0.3)
    assert post.diagnostics["rhat_max"] < 1.05
    assert post.info["batch_size"] == 25


def test_sghmc_approximates_the_blr_posterior(blr):
    data, mean, cov = blr
    post = blr_fit("sghmc", data, step_size=1e-3, friction=10.0, num_integration_steps=10,
                   batch_size=25, num_chains=4, num_burnin=1000, num_samples=1000, thinning=10)
    check_moments(post, mean, cov, mean_tol=0.25, var_rtol=0.3)
    assert post.diagnostics["rhat_max"] < 1.05


def test_sghmc_default_friction_damps_a_fixed_share_and_samples_the_blr_posterior(blr):
    data, mean, cov = blr
    post = blr_fit("sghmc", data, step_size=1e-3, num_integration_steps=10, batch_size=25,
                   num_chains=4, num_burnin=1000, num_samples=1000, thinning=10)
    check_moments(post, mean, cov, mean_tol=0.25, var_rtol=0.3)
    assert post.diagnostics["rhat_max"] < 1.05
    from bdl.approximators._sgmcmc import DEFAULT_DAMPING, SGHMCOptions

    assert SGHMCOptions(step_size=1e-3).resolved_friction(100) == pytest.approx(
        DEFAULT_DAMPING / 1e-3)
    assert SGHMCOptions(friction=3.0).resolved_friction(100) == 3.0
    with pytest.raises(ValueError, match="`friction`"):
        SGHMCOptions(friction=-1.0)


def test_cyclical_sgld_approximates_the_blr_posterior(blr):
    data, mean, cov = blr
    post = blr_fit("cyclical_sgld", data, step_size=2e-4, batch_size=25, num_chains=8,
                   num_cycles=10, steps_per_cycle=500, exploration_fraction=0.5,
                   num_samples=20, thinning=20)
    assert post.num_particles == 8 * 20
    check_moments(post, mean, cov, mean_tol=0.35, var_rtol=0.5)


def test_cyclical_schedule_explores_without_noise_then_samples_at_cycle_ends():
    opts = CyclicalOptions(num_cycles=2, steps_per_cycle=10, exploration_fraction=0.6,
                           num_samples=4, thinning=2, temperature=0.5)
    s = cyclical_schedule(opts, peak=1.0)
    r = (np.arange(20) % 10) / 10
    np.testing.assert_allclose(s["step_size"], 0.5 * (np.cos(np.pi * r) + 1), rtol=1e-6)
    np.testing.assert_array_equal(s["temperature"], np.where(r < 0.6, 0.0, 0.5))
    np.testing.assert_array_equal(np.flatnonzero(s["slot"] >= 0), [7, 9, 17, 19])
    np.testing.assert_array_equal(s["slot"][[7, 9, 17, 19]], [0, 1, 2, 3])
    with pytest.raises(ValueError, match="do not fit"):
        CyclicalOptions(num_cycles=2, steps_per_cycle=10, num_samples=20, thinning=2)


class SquaredWeight(nn.Module):
    """y = w^2 x: the posterior over w has two separated modes, +-1."""

    @nn.compact
    def __call__(self, x):
        w = self.param("w", nn.initializers.ones, (1,))
        return x * w**2


def test_rhat_is_far_above_one_when_chains_sit_in_separated_modes():
    """(On BLR, R-hat < 1.05: see the SGLD/SGHMC tests above and test_hmc.)"""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 1)).astype(np.float32)
    y = (x[:, 0] + 0.1 * rng.normal(size=100)).astype(np.float32)
    starts = {"net": {"w": jnp.array([[1.0], [1.0], [-1.0], [-1.0]])}, "lik": {}}
    kw = dict(step_size=1e-5, num_chains=4, num_burnin=0, num_samples=50, thinning=1)
    stuck = blr_fit("sgld", (x, y), model=SquaredWeight(), init_positions=starts, **kw)
    assert stuck.diagnostics["rhat_max"] > 3.0
    draws = np.asarray(stuck.chains()["net"]["w"])[..., 0]
    assert np.all(draws[:2] > 0) and np.all(draws[2:] < 0)  # each chain stayed in its mode


def test_kernel_keys_are_a_pure_function_of_the_step_key_and_give_iid_normal_noise():
    """The kernels' per-step keys (philox where jax has it) come from the step's threefry key;
    blackjax's N(0, I) draws from them look i.i.d. standard normal across and within steps."""
    steps = jax.random.split(jax.random.key(0), 400)
    keys = jax.vmap(kernel_key)(steps)
    again = jax.vmap(kernel_key)(steps)
    np.testing.assert_array_equal(jax.random.key_data(keys), jax.random.key_data(again))
    position = {"a": jnp.zeros((50, 20)), "b": jnp.zeros(7)}
    noise = jax.vmap(lambda k: jax.flatten_util.ravel_pytree(
        blackjax.util.generate_gaussian_noise(k, position))[0])(keys)
    z = np.asarray(noise, np.float64)  # [steps, D]
    assert z.shape == (400, 1007)
    n = z.size
    assert abs(z.mean()) < 4 / np.sqrt(n)
    assert abs(z.var() - 1) < 4 * np.sqrt(2 / n)
    assert abs(np.mean(z**4) - 3) < 0.1  # Gaussian kurtosis
    lag = np.mean(z[1:] * z[:-1])  # between consecutive steps, same coordinate
    assert abs(lag) < 4 / np.sqrt(z[1:].size)
    assert np.unique(np.asarray(jax.random.key_data(keys)), axis=0).shape[0] == 400


def test_sgld_resumes_from_a_checkpoint_with_the_same_result(blr, sgld_post, tmp_path):
    data, kw = blr[0], SGLD_BLR
    assert sgld_post.info["timing"]["compiled_chunk_lengths"] == [1100]  # compiled once, run 10x

    class Killed(Exception):
        pass

    def kill(progress):
        if progress["step"] >= 1100:
            raise Killed

    with pytest.raises(Killed):
        blr_fit("sgld", data, checkpoint_dir=tmp_path, callback=kill, **kw)
    seen = []
    resumed = blr_fit("sgld", data, checkpoint_dir=tmp_path, callback=seen.append, **kw)
    assert [s["step"] for s in seen] == list(range(2200, 11001, 1100))
    np.testing.assert_array_equal(weights(resumed), weights(sgld_post))
    with pytest.raises(ValueError, match="other settings"):
        blr_fit("sgld", data, checkpoint_dir=tmp_path, **{**kw, "step_size": 2e-4})


def test_sampler_options_are_checked(blr):
    data, _, _ = blr
    with pytest.raises(TypeError, match=r"Unknown option\(s\) \['epochs'\] for method 'sgld'"):
        blr_fit("sgld", data, epochs=3)
    with pytest.raises(ValueError, match="num_integration_steps"):
        blr_fit("sghmc", data, num_integration_steps=1)
    with pytest.raises(ValueError, match="step_size"):
        blr_fit("sgld", data, step_size=-1.0)
    with pytest.raises(ValueError, match="init_positions"):
        blr_fit("sgld", data, num_chains=2, init_positions={"net": {}, "lik": {}})
    assert {"sgld", "sghmc", "cyclical_sgld", "hmc", "nuts"} <= set(bdl.available())
