"""Mean-field VI: the exact mean-field optimum of a conjugate linear model with default
options (float32 and float64), exact on an orthogonal design, gap uncertainty, tail averaging,
convergence warning, determinism, vmapped seeds, last-layer variant, classification,
heteroscedastic noise, errors."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen, nnx
from scipy import stats

import bdl
from bdl.approximators._averaging import tail_average, tail_average_params
from bdl.approximators._vi import (
    _stages,
    _window,
    elbo_loss,
    init_mean_field,
    kl_to_prior,
    mean_field_scale,
)
from bdl.training import build_epoch, init_state


def _orthogonal_design(n=16, d=3, seed=0):
    """Centred, mutually orthogonal columns (Hadamard): X^T X and X^T 1 are diagonal/zero."""
    h = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], float)
    x = (np.kron(h, h)[:, 1 : 1 + d] * np.array([0.5, 0.8, 1.2])[:d]).astype(np.float32)
    rng = np.random.default_rng(seed)
    y = (x @ np.array([1.0, -0.5, 0.7])[:d] + 0.3 + rng.normal(size=n)).astype(np.float32)
    return x, y


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    with jax.enable_x64(request.param == "float64"):
        yield np.dtype(request.param)


def _conjugate_problem(n=60, sigma=0.5, lam=2.0):
    """Correlated inputs (a non-diagonal posterior precision), and the exact mean-field
    optimum: the exact posterior mean, and variances 1 / diag(precision)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]])
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.3 + sigma * rng.normal(size=n)
    xb = np.concatenate([x, np.ones((n, 1))], axis=1)
    precision = xb.T @ xb / sigma**2 + lam * np.eye(4)
    mean = np.linalg.solve(precision, xb.T @ y / sigma**2)
    return x, y, mean, 1.0 / np.diag(precision)


def test_default_options_find_the_exact_mean_field_optimum(dtype):
    """Default options on conjugate Bayesian linear regression: the variational means sit
    within 0.15 posterior sd of the exact posterior mean and the variances within 25% of
    1/diag(precision) (the mean-field optimum); the predictive mean within 0.2 sd and the
    epistemic variance within 25%. Over seeds 0-7 per dtype the largest errors were 0.05 sd
    (means), 5% (variances), 0.06 sd (predictive mean), 6% (predictive variance)."""
    sigma, lam = 0.5, 2.0
    x, y, mean, var = _conjugate_problem(sigma=sigma, lam=lam)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bdl.NotConvergedWarning)
        post = bdl.fit("vi", nnx.Linear(3, 1, rngs=nnx.Rngs(0)),
                       bdl.likelihoods.Gaussian(scale=sigma), (x.astype(dtype), y.astype(dtype)),
                       key=jax.random.key(0), prior=bdl.priors.IsotropicGaussian(lam))
    assert post.info["converged"] is True
    flat = lambda t: np.concatenate([np.asarray(t["kernel"])[:, 0], np.asarray(t["bias"])])
    assert np.all(np.abs(flat(post.loc) - mean) < 0.15 * np.sqrt(var))
    np.testing.assert_allclose(flat(post.scale) ** 2, var, rtol=0.25)

    xt = np.array([[-2.0, 1.0, 0.5], [0.0, 0.0, 0.0], [1.5, -1.0, 2.0]], dtype)
    xtb = np.concatenate([xt, np.ones((3, 1))], axis=1)
    pred = post.predict(xt, key=jax.random.key(1), num_samples=4000)
    epistemic = xtb**2 @ var  # of the mean-field optimum
    assert np.all(np.abs(np.asarray(pred.mean()) - xtb @ mean) < 0.2 * np.sqrt(epistemic))
    np.testing.assert_allclose(np.asarray(pred.variance()) - sigma**2, epistemic, rtol=0.25)


def test_tail_average_keeps_the_mean_iterate_of_each_half_window():
    """Iterates p_t = t + 1 (SGD on a constant gradient -1): the window (2, 4, 6) averages
    steps 2-3 and 4-5; the next window (6, 9, 12) restarts; extra args pass through."""
    opt = tail_average(optax.sgd(1.0), ((2, 4, 6), (6, 9, 12)))
    params = {"w": jnp.zeros(2)}
    state = opt.init(params)
    step = jax.jit(lambda p, s: opt.update({"w": -jnp.ones(2)}, s, p, value=1.0))
    seen = {}
    for t in range(12):
        updates, state = step(params, state)
        params = optax.apply_updates(params, updates)
        seen[t] = tail_average_params(state)
    first, second, count = seen[5]
    assert int(count) == 6
    np.testing.assert_allclose(first["w"], 3.5)  # iterates 3, 4
    np.testing.assert_allclose(second["w"], 5.5)  # iterates 5, 6
    first, second, _ = seen[11]
    np.testing.assert_allclose(first["w"], 8.0)  # iterates 7, 8, 9
    np.testing.assert_allclose(second["w"], 11.0)  # iterates 10, 11, 12
    with pytest.raises(ValueError, match="windows"):
        tail_average(optax.sgd(1.0), ((4, 2, 6),))


@pytest.mark.parametrize(
    "epochs, max_epochs, per_epoch, want",
    [
        (None, None, 1, (2000, 4000, 8000, 16000, 32000)),
        (None, None, 39, (52, 104, 208, 416, 820)),  # the cap ends a shorter last stage
        (None, 300, 1, (300,)),
        (None, 5000, 1, (2000, 4000, 5000)),
        (40, None, 7, (40,)),
    ],
)
def test_stages_double_up_to_the_cap_with_disjoint_windows(epochs, max_epochs, per_epoch, want):
    stages = _stages(epochs, max_epochs, per_epoch)
    assert stages == want
    windows = [_window(end, prev) for end, prev in zip(stages, (0, *stages[:-1]), strict=True)]
    assert windows[0] == (stages[0] // 2, stages[0] // 2 + (stages[0] - stages[0] // 2) // 2,
                          stages[0])
    for (_, _, end), (start, mid, nxt) in zip(windows, windows[1:], strict=False):
        assert end <= start < mid < nxt
    tail_average(optax.sgd(1.0), tuple(tuple(per_epoch * e for e in w) for w in windows))


@pytest.mark.parametrize("learning_rate", [1e-2, 1e-3])
def test_too_few_epochs_warn_not_converged(learning_rate):
    """40 steps: at 1e-2 the ELBO still clearly improves; at 1e-3 it creeps by less than
    its Monte Carlo noise, which is too few steps to tell, so not converged either."""
    x, y, _, _ = _conjugate_problem()
    with pytest.warns(bdl.NotConvergedWarning, match="max_epochs"):
        post = bdl.fit("vi", nnx.Linear(3, 1, rngs=nnx.Rngs(0)),
                       bdl.likelihoods.Gaussian(scale=0.5), (x, y), key=0, epochs=40,
                       learning_rate=learning_rate, prior=bdl.priors.IsotropicGaussian(2.0))
    assert post.info["converged"] is False and post.info["epochs"] == 40


def test_overflowing_elbo_raises_instead_of_returning_nan():
    x, y, _, _ = _conjugate_problem()
    with pytest.raises(bdl.NonFiniteError, match="learning_rate"):
        bdl.fit("vi", nnx.Linear(3, 1, rngs=nnx.Rngs(0)), bdl.likelihoods.Gaussian(scale=0.5),
                (x * 1e20, y), key=0, epochs=5)


@pytest.mark.slow
def test_default_mlp_on_a_1d_toy_has_the_right_noise():
    """Default MLP and options, 200 points of sin(x) + N(0, 0.1^2): converged, the fitted
    noise sd within 30% of 0.1, the predictive sd at the data close to it, larger away."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, size=(200, 1)).astype(np.float32)
    y = (np.sin(x[:, 0]) + 0.1 * rng.normal(size=200)).astype(np.float32)
    post = bdl.fit("vi", bdl.models.MLP(), bdl.likelihoods.Gaussian(), (x, y),
                   key=jax.random.key(0))
    assert post.info["converged"] is True
    noise = float(jnp.exp(post.lik_params["log_scale"]))
    assert 0.07 < noise < 0.13
    at_data = post.predict(x, key=jax.random.key(1), num_samples=300)
    sd = np.sqrt(np.asarray(at_data.variance()))
    assert 0.08 < np.mean(sd) < 0.2
    assert np.sqrt(np.mean((np.asarray(at_data.mean()) - np.sin(x[:, 0])) ** 2)) < 0.08
    far = post.predict(np.array([[-6.0], [6.0]], np.float32), key=jax.random.key(1),
                       num_samples=300)
    assert np.all(np.sqrt(np.asarray(far.variance())) > 2 * np.mean(sd))


def test_orthogonal_linear_regression_matches_exact_posterior():
    """With a diagonal posterior precision the exact posterior is mean-field, so VI must find
    it: means within 0.1 posterior sd, variances within 15%, ELBO = log evidence (0.5 nats)."""
    x, y = _orthogonal_design()
    sigma, lam, epochs = 1.0, 1.0, 3000
    post = bdl.fit("vi", linen.Dense(1), bdl.likelihoods.Gaussian(scale=sigma), (x, y),
                   key=jax.random.key(0), epochs=epochs, num_mc_samples=8, init_scale=0.3,
                   optimizer=optax.adam(optax.cosine_decay_schedule(0.05, epochs)),
                   prior=bdl.priors.IsotropicGaussian(lam))
    xb = np.concatenate([x, np.ones((len(x), 1))], axis=1).astype(np.float64)
    precision = xb.T @ xb / sigma**2 + lam * np.eye(xb.shape[1])
    assert np.allclose(precision, np.diag(np.diag(precision)))
    mean = np.linalg.solve(precision, xb.T @ y / sigma**2)
    var = 1.0 / np.diag(precision)
    flat = lambda t: np.concatenate([np.asarray(t["kernel"])[:, 0], np.asarray(t["bias"])])
    assert np.all(np.abs(flat(post.loc) - mean) < 0.1 * np.sqrt(var))
    np.testing.assert_allclose(flat(post.scale) ** 2, var, rtol=0.15)
    evidence = stats.multivariate_normal(np.zeros(len(y)), sigma**2 * np.eye(len(y))
                                         + xb @ xb.T / lam).logpdf(y)
    assert post.elbo.shape == (epochs,)
    assert abs(np.mean(post.elbo[-200:]) - evidence) < 0.5


@pytest.mark.filterwarnings("ignore::bdl.NotConvergedWarning")
def test_predictive_variance_is_larger_in_the_gap_than_at_the_data():
    rng = np.random.default_rng(0)
    n, epochs = 512, 3000
    x = np.concatenate([rng.uniform(-2, -0.75, n // 2), rng.uniform(0.75, 2, n // 2)])
    x = x.astype(np.float32)[:, None]
    y = (np.sin(1.5 * x[:, 0]) + 0.1 * rng.normal(size=n)).astype(np.float32)
    post = bdl.fit("vi", bdl.models.MLP((32, 32), activation="tanh"), bdl.likelihoods.Gaussian(),
                   (x, y), key=jax.random.key(0), epochs=epochs,
                   optimizer=optax.adam(optax.cosine_decay_schedule(2e-2, epochs, 0.1)))
    key = jax.random.key(1)
    at_data = post.predict(x, key=key, num_samples=200)
    in_gap = post.predict(np.linspace(-0.3, 0.3, 7, dtype=np.float32)[:, None], key=key,
                          num_samples=200)
    assert float(jnp.sqrt(jnp.mean((at_data.mean() - y) ** 2))) < 0.25  # it does fit the data
    assert float(jnp.mean(in_gap.variance())) > 2.0 * float(jnp.mean(at_data.variance()))
    assert float(jnp.min(in_gap.variance())) > float(jnp.max(at_data.variance()))


@pytest.mark.filterwarnings("ignore::bdl.NotConvergedWarning")
def test_same_key_same_result_heteroscedastic_minibatches(key):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(64, 1)).astype(np.float32)
    y = (x[:, 0] + (0.1 + 0.3 * np.abs(x[:, 0])) * rng.normal(size=64)).astype(np.float32)
    fit = lambda k: bdl.fit("vi", bdl.models.MLP((8,), out=2),
                            bdl.likelihoods.Gaussian("heteroscedastic"), (x, y), key=k,
                            epochs=20, batch_size=16, num_mc_samples=2, learning_rate=1e-2)
    a, b = fit(key), fit(key)
    jax.tree.map(np.testing.assert_array_equal, a.q, b.q)
    pa = a.predict(x, key=key, num_samples=10)
    np.testing.assert_array_equal(pa.mean(), a.predict(x, key=key, num_samples=10).mean())
    assert not np.allclose(pa.mean(), a.predict(x, key=jax.random.key(3), num_samples=10).mean())
    assert pa.batch_shape == (64,) and np.all(np.isfinite(pa.aleatoric_variance()))
    assert a.elbo.shape == (20,) and np.all(np.isfinite(a.elbo))
    with pytest.raises(ValueError, match="`key` is required"):
        a.predict(x)


def test_elbo_step_and_epoch_vmap_over_seeds():
    """The ELBO and the training epoch are pure in the key: vmapping over seeds equals
    running each seed alone, and different seeds give different estimates."""
    x, y = _orthogonal_design()
    data = {"x": jnp.asarray(x), "y": jnp.asarray(y), "w": jnp.ones(len(x))}
    net = bdl.models.as_network(linen.Dense(1), x[:1])
    lik = bdl.likelihoods.Gaussian()
    p0 = net.init(jax.random.key(0))
    loss = elbo_loss(net.apply, lik, bdl.priors.IsotropicGaussian().precision_tree(p0), len(x),
                     num_mc_samples=2)
    params = {"net": init_mean_field(p0, 0.5), "lik": lik.init_params(), "fixed": {}}
    keys = jax.random.split(jax.random.key(1), 4)
    batched = jax.jit(jax.vmap(loss, in_axes=(None, None, 0)))(params, data, keys)
    assert len(np.unique(np.asarray(batched))) == 4  # one independent estimate per key

    optimizer = optax.adam(1e-2)
    epoch = build_epoch(loss, optimizer, len(x), 8, loss_takes_key=True)
    states = jax.vmap(lambda k: init_state(k, params, optimizer))(keys)
    run = jax.jit(jax.vmap(epoch, in_axes=(0, None)))
    new, losses = run(states, data)
    one, loss1 = jax.jit(epoch)(init_state(keys[1], params, optimizer), data)
    np.testing.assert_allclose(losses[1], loss1, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[1], b, rtol=1e-5, atol=1e-6),
                 new.params, one.params)


@pytest.mark.filterwarnings("ignore::bdl.NotConvergedWarning")
def test_last_layer_classification():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 3], [3, 0], [-3, -3]], np.float32)
    y = rng.integers(0, 3, size=300)
    x = (centres[y] + rng.normal(size=(300, 2))).astype(np.float32)
    post = bdl.fit("vi", bdl.models.MLP((16,), out=3), bdl.likelihoods.Categorical(), (x, y),
                   key=jax.random.key(0), epochs=200, learning_rate=1e-2, subset="last_layer",
                   init_scale=0.1)
    assert post.path == ("layers", 1)
    draws = post.sample_params(jax.random.key(1), 3)["net"]
    body, head = draws["layers"][0]["kernel"], draws["layers"][1]["kernel"]
    np.testing.assert_array_equal(body[0], body[1])  # the body is fixed at the MAP fit
    assert not np.allclose(head[0], head[1])
    pred = post.predict(x, key=jax.random.key(2), num_samples=50)
    assert pred.is_classification and pred.batch_shape == (300,)
    assert float(jnp.mean(pred.mode() == y)) > 0.9
    assert float(jnp.mean(pred.mutual_information())) > 0


def test_kl_uses_per_layer_prior_precisions():
    loc = {"layers": {0: {"kernel": jnp.full((2, 3), 0.5), "bias": jnp.zeros(3)},
                      1: {"kernel": -jnp.ones((3, 1)), "bias": jnp.ones(1)}}}
    q = init_mean_field(loc, 0.2)
    prior = bdl.priors.IsotropicGaussian({"layers/1": 4.0}, default=0.5)
    got = jax.jit(kl_to_prior)(q, prior.precision_tree(loc))

    def kl(m, s, lam):  # KL(N(m, s^2) || N(0, 1/lam)), by hand
        return 0.5 * np.sum(lam * s**2 + lam * m**2 - 1.0 - np.log(lam * s**2))

    scale = jax.tree.map(np.asarray, jax.jit(mean_field_scale)(q))
    np.testing.assert_allclose(scale["layers"][0]["bias"], 0.2, rtol=1e-6)
    want = sum(kl(np.asarray(loc["layers"][i][k]), scale["layers"][i][k], lam)
               for i, lam in ((0, 0.5), (1, 4.0)) for k in ("kernel", "bias"))
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


class _Squashed(linen.Module):
    @linen.compact
    def __call__(self, x):
        return jnp.tanh(linen.Dense(1)(x))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(subset="last"), "subset"),
        (dict(num_mc_samples=0), "num_mc_samples"),
        (dict(init_scale=0.0), "init_scale"),
        (dict(kl_weight=-1.0), "kl_weight"),
        (dict(subset="last_layer", map_epochs=0), "init_params"),
    ],
)
def test_bad_options_name_the_argument(kwargs, match):
    x, y = _orthogonal_design()
    with pytest.raises((ValueError, TypeError), match=match):
        bdl.fit("vi", linen.Dense(1), bdl.likelihoods.Gaussian(), (x, y), key=0, epochs=1,
                **kwargs)


def test_unidentifiable_last_layer_is_a_clear_error():
    x, y = _orthogonal_design()
    init = bdl.models.as_network(_Squashed(), x[:1]).init(jax.random.key(0))
    with pytest.raises(ValueError, match="last_layer.*dense layer"):
        bdl.fit("vi", _Squashed(), bdl.likelihoods.Gaussian(), (x, y), key=0, epochs=1,
                subset="last_layer", map_epochs=0, init_params=init)
    assert "vi" in bdl.available()


def test_a_repeated_identical_fit_compiles_nothing(compilations):
    """Same model spec, likelihood, options, shapes and dtypes: the second fit (last-layer VI,
    so the MAP stage too) and its predict reuse every compiled program (``bdl._cache``)."""

    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    y = x[:, 0]

    def run(**options):
        post = bdl.fit("vi", bdl.models.MLP((8,)), bdl.likelihoods.Gaussian(), (x, y),
                       key=jax.random.key(0), epochs=20, **options)
        return np.asarray(post.predict(x, key=jax.random.key(1), num_samples=10).mean())

    for options in (dict(), dict(subset="last_layer", validation_fraction=0.2)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bdl.NotConvergedWarning)
            first = run(**options)
            second, compiles = compilations(lambda options=options: run(**options))
        assert compiles == [], options
        np.testing.assert_array_equal(first, second)


def test_options_object_equals_flat_keywords():
    x, y = _orthogonal_design()
    opts = bdl.approximators.VIOptions(bdl.approximators.TrainOptions(epochs=5),
                                       num_mc_samples=2)
    fit = lambda **kw: bdl.fit("vi", linen.Dense(1), bdl.likelihoods.Gaussian(), (x, y),
                               key=0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bdl.NotConvergedWarning)
        a, b = fit(options=opts), fit(epochs=5, num_mc_samples=2)
    np.testing.assert_array_equal(np.asarray(a.q.loc["kernel"]), np.asarray(b.q.loc["kernel"]))
    assert bdl.approximators.options_class("vi") is bdl.approximators.VIOptions
