"""SGLD, SGHMC and cyclical SG-MCMC: default step sizes from the curvature, R-hat on a case
built to fail (and its warning), NaN detection, checkpoint/resume, schedules, option errors,
composed options, compile counts. The checks against the exact posterior, with default
options, are in test_sampler_exact_blr.py (slow)."""


import blackjax
import flax.linen as nn
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import bdl
from bdl.approximators import SamplerOptions
from bdl.approximators._sgmcmc import (
    CyclicalOptions,
    SGHMCDynamics,
    SGHMCOptions,
    cyclical_schedule,
    kernel_key,
)

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


SGLD_BLR = dict(step_size=1e-4, batch_size=25, num_chains=2, num_burnin=100, num_samples=50,
                thinning=4, chunk_steps=100)  # 300 steps: 3 chunks of 100


@pytest.fixture(scope="module")
def sgld_post(blr):
    with pytest.warns(bdl.DiagnosticsWarning):  # far too short to trust, and says so
        return blr_fit("sgld", blr[0], **SGLD_BLR)


def exact_curvature(x):
    phi = np.concatenate([x, np.ones((len(x), 1))], axis=1).astype(np.float64)
    return np.linalg.eigvalsh(phi.T @ phi / SIGMA**2 + PRIOR_PRECISION * np.eye(3)).max()


@pytest.mark.filterwarnings("ignore::bdl.DiagnosticsWarning")
def test_default_step_sizes_follow_the_curvature(blr):
    """On BLR the curvature is the largest eigenvalue of the posterior precision (~ N / sigma^2):
    SGLD's default step is 0.1 / curvature, SGHMC's 0.1 / sqrt(curvature), cyclical's peak
    0.15 / curvature; SGHMC's friction damps a fixed share of the momentum per step."""
    from bdl.approximators._sgmcmc import DEFAULT_DAMPING

    (x, y), _, _ = blr
    lam = exact_curvature(x)
    short = dict(num_chains=1, num_burnin=0, num_samples=4, thinning=1)
    sgld = blr_fit("sgld", (x, y), **short)
    assert sgld.info["curvature"] == pytest.approx(lam, rel=0.05)  # power iteration: close eigenvalues converge slowly
    lam = sgld.info["curvature"]
    assert sgld.info["step_size_max"] == pytest.approx(0.1 / lam, rel=1e-5)
    sghmc = blr_fit("sghmc", (x, y), **short)
    assert sghmc.info["step_size_max"] == pytest.approx(0.1 / np.sqrt(lam), rel=1e-5)
    assert sghmc.info["friction"] == pytest.approx(DEFAULT_DAMPING * np.sqrt(lam) / 0.1, rel=1e-5)
    cyc = blr_fit("cyclical_sgld", (x, y), num_chains=1, num_cycles=1, steps_per_cycle=20,
                  num_samples=2, thinning=2)
    assert cyc.info["step_size_max"] == pytest.approx(0.15 / lam, rel=1e-5)
    # ten times the data: ten times the curvature, a tenth of the step
    big = blr_problem(n=1000)[0]
    assert blr_fit("sgld", big, **short).info["step_size_max"] == pytest.approx(
        0.1 / exact_curvature(big[0]), rel=0.05)


def test_sghmc_friction_rule():
    from bdl.approximators._sgmcmc import DEFAULT_DAMPING

    assert SGHMCDynamics().resolved_friction(1e-3) == pytest.approx(DEFAULT_DAMPING / 1e-3)
    assert SGHMCDynamics(friction=3.0).resolved_friction(1e-3) == 3.0
    with pytest.raises(ValueError, match="`friction`"):
        SGHMCDynamics(friction=-1.0)


def test_a_step_size_too_large_raises_naming_the_step(blr):
    with pytest.raises(bdl.NonFiniteError, match=r"at step \d+ .*lower `step_size`"):
        blr_fit("sgld", blr[0], step_size=1.0, num_chains=2, num_burnin=100, num_samples=10)


def test_cyclical_schedule_explores_without_noise_then_samples_at_cycle_ends():
    opts = CyclicalOptions(num_cycles=2, steps_per_cycle=10, exploration_fraction=0.6,
                           num_samples=4, thinning=2, sampler=SamplerOptions(temperature=0.5))
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
    with pytest.warns(bdl.DiagnosticsWarning, match=r"R-hat .* > 1.1 .*`num_burnin`"):
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
    assert sgld_post.info["timing"]["compiled_chunk_lengths"] == [100]  # compiled once, run 3x

    class Killed(Exception):
        pass

    def kill(progress):
        if progress["step"] >= 100:
            raise Killed

    with pytest.raises(Killed):
        blr_fit("sgld", data, checkpoint_dir=tmp_path, callback=kill, **kw)
    seen = []
    with pytest.warns(bdl.DiagnosticsWarning):
        resumed = blr_fit("sgld", data, checkpoint_dir=tmp_path, callback=seen.append, **kw)
    assert [s["step"] for s in seen] == [200, 300]
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


def test_flat_keywords_route_into_the_composed_options(blr):
    """Every flat keyword reaches the (sub-)options that declares it; ``options=`` gives the
    same posterior; the methods' own defaults (burn-in, thinning) stay theirs."""
    opts = bdl.approximators.make_options("sghmc", num_chains=2, temperature=0.5, friction=3.0,
                                          num_samples=7)
    assert opts == SGHMCOptions(sampler=SamplerOptions(num_chains=2, temperature=0.5),
                                dynamics=SGHMCDynamics(friction=3.0), num_samples=7)
    assert (opts.num_burnin, opts.thinning) == (200, 4)
    sgld = bdl.approximators.make_options("sgld", num_chains=2)
    assert (sgld.num_burnin, sgld.num_samples, sgld.thinning) == (1000, 500, 20)
    kw = dict(step_size=1e-4, num_chains=2, num_burnin=10, num_samples=5, thinning=2)
    with pytest.warns(bdl.DiagnosticsWarning):
        flat = blr_fit("sgld", blr[0], **kw)
    prior = bdl.priors.IsotropicGaussian(PRIOR_PRECISION)
    options = bdl.approximators.make_options("sgld", prior=prior, **kw)
    with pytest.warns(bdl.DiagnosticsWarning):
        typed = bdl.fit("sgld", nn.Dense(1), bdl.likelihoods.Gaussian(scale=SIGMA), blr[0],
                        key=jax.random.key(0), options=options)
    np.testing.assert_array_equal(weights(typed), weights(flat))


@pytest.mark.filterwarnings("ignore::bdl.DiagnosticsWarning")
def test_a_repeated_sghmc_fit_compiles_nothing(compilations):
    """Same model spec, likelihood, options, shapes and dtypes: the second fit and predict
    reuse every compiled program. The curvature, the step size and friction derived from it
    are arguments, not constants: new data of the same shape compiles nothing either."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)

    def run(y):
        post = bdl.fit("sghmc", bdl.models.MLP((8,)), bdl.likelihoods.Gaussian(), (x, y),
                       key=jax.random.key(0), num_chains=2, num_burnin=10, num_samples=5,
                       thinning=2, num_integration_steps=3)
        return post, np.asarray(post.predict(x).mean())

    (first, mean), _ = compilations(lambda: run(x[:, 0]))
    (second, again), log = compilations(lambda: run(x[:, 0]))
    assert log == []
    np.testing.assert_array_equal(again, mean)
    assert second.info["timing"]["compile_s"] < first.info["timing"]["compile_s"]
    (other, _), log = compilations(lambda: run(2.0 * x[:, 1]))
    assert log == []
    assert other.info["friction"] != first.info["friction"]
