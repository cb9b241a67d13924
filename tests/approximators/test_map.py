"""MAP: exactness on ridge regression, determinism, classification, checkpoints, save/load."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen

import bdl


def _linear_data(n=200, d=3, noise=0.5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = np.array([1.5, -2.0, 0.5], np.float32)[:d]
    y = (x @ w + 0.3 + noise * rng.normal(size=n)).astype(np.float32)
    return x, y


def test_map_linear_model_recovers_closed_form_ridge():
    x, y = _linear_data()
    sigma, lam = 0.5, 4.0
    post = bdl.fit(
        "map", linen.Dense(1), bdl.likelihoods.Gaussian(scale=sigma), (x, y),
        key=jax.random.key(0), epochs=3000, optimizer=optax.adam(0.05),
        prior=bdl.priors.IsotropicGaussian(lam),
    )
    # closed form: weights and bias share the prior precision
    xb = np.concatenate([x, np.ones((len(x), 1), np.float32)], axis=1).astype(np.float64)
    a = xb.T @ xb / sigma**2 + lam * np.eye(xb.shape[1])
    expected = np.linalg.solve(a, xb.T @ y / sigma**2)
    net = jax.tree.map(lambda p: np.asarray(p[0]), post.particles["net"])
    got = np.concatenate([net["kernel"][:, 0], net["bias"]])
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_map_learns_homoscedastic_noise_scale():
    x, y = _linear_data(n=2000, noise=0.5)
    post = bdl.fit("map", linen.Dense(1), bdl.likelihoods.Gaussian(), (x, y),
                   key=jax.random.key(1), epochs=1500, optimizer=optax.adam(0.05))
    scale = float(jnp.exp(post.particles["lik"]["log_scale"][0]))
    assert abs(scale - 0.5) < 0.03


def test_same_key_same_result_different_key_different(key):
    x, y = _linear_data(n=64)
    model = bdl.models.MLP(hidden=(8,), out=1)
    fit = lambda k: bdl.fit("map", model, bdl.likelihoods.Gaussian(), (x, y), key=k, epochs=20,
                            batch_size=16)
    a, b, c = fit(key), fit(key), fit(jax.random.key(7))
    xa = a.predict(x).mean()
    np.testing.assert_array_equal(xa, b.predict(x).mean())
    assert not np.allclose(xa, c.predict(x).mean())


def test_map_classification_predictive_is_categorical():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 3], [3, 0], [-3, -3]], np.float32)
    y = rng.integers(0, 3, size=300)
    x = (centres[y] + rng.normal(size=(300, 2))).astype(np.float32)
    post = bdl.fit("map", bdl.models.MLP((16,), out=3), bdl.likelihoods.Categorical(), (x, y),
                   key=jax.random.key(0), epochs=300, learning_rate=1e-2)
    pred = post.predict(x)
    assert pred.is_classification and pred.batch_shape == (300,)
    assert float(jnp.mean(pred.mode() == y)) > 0.9


def test_checkpoint_resume_equals_uninterrupted(tmp_path, key):
    x, y = _linear_data(n=64)
    kw = dict(key=key, batch_size=16, chunk_epochs=5)
    model, lik = bdl.models.MLP((8,)), bdl.likelihoods.Gaussian()
    full = bdl.fit("map", model, lik, (x, y), epochs=20, **kw)
    bdl.fit("map", model, lik, (x, y), epochs=10, checkpoint_dir=tmp_path, **kw)
    resumed = bdl.fit("map", model, lik, (x, y), epochs=20, checkpoint_dir=tmp_path, **kw)
    assert resumed.info["history"]["train_loss"].shape[-1] == 10  # only the remaining epochs ran
    np.testing.assert_allclose(resumed.predict(x).mean(), full.predict(x).mean(), rtol=1e-6)


def test_save_load_roundtrip(tmp_path, key):
    x, y = _linear_data(n=64)
    model, lik = bdl.models.MLP((8,)), bdl.likelihoods.Gaussian()
    post = bdl.fit("ensemble", model, lik, (x, y), key=key, epochs=5, num_members=3,
                   random_prior_scale=0.5)
    bdl.approximators.save(post, tmp_path / "post")
    back = bdl.approximators.load(tmp_path / "post", model, lik)
    assert back.method == "ensemble" and back.num_particles == 3
    np.testing.assert_allclose(back.predict(x).mean(), post.predict(x).mean(), rtol=1e-6)
    with pytest.raises(FileNotFoundError, match="path"):
        bdl.approximators.load(tmp_path / "nothing", model, lik)


def test_early_stopping_keeps_best_validation_params(key):
    x, y = _linear_data(n=200)
    post = bdl.fit("map", bdl.models.MLP((32,)), bdl.likelihoods.Gaussian(), (x, y), key=key,
                   epochs=400, learning_rate=1e-2, validation_fraction=0.25, patience=2,
                   chunk_epochs=20)
    val = post.info["history"]["val_loss"][0]
    assert len(val) <= 20  # stopped, or ran to the end
    assert np.isfinite(val).all()


def test_large_inputs_are_predicted_in_chunks(key):
    x, y = _linear_data(n=64)
    post = bdl.fit("ensemble", bdl.models.MLP((8,)), bdl.likelihoods.Gaussian(), (x, y), key=key,
                   epochs=3, num_members=2)
    big = np.random.default_rng(1).normal(size=(1000, 3)).astype(np.float32)
    whole = post.outputs(big)
    chunked = post.outputs(big, chunk_size=96)
    assert chunked.shape == (2, 1000, 1)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)


def test_a_repeated_identical_fit_compiles_nothing(compilations):
    """Same method, options, shapes and dtypes: the second fit and predict reuse every
    compiled program (bdl._cache), so no XLA compilation happens."""

    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    y = x[:, 0]

    def run():
        post = bdl.fit("map", bdl.models.MLP((8,)), bdl.likelihoods.Gaussian(), (x, y),
                       key=jax.random.key(0), epochs=20)
        return np.asarray(post.predict(x).mean())

    first = run()
    second, compiles = compilations(run)
    assert compiles == []
    np.testing.assert_array_equal(first, second)


def test_until_converged_reports_why_it_stopped():
    """Defaults run until converged; a cap that ends the run warns, naming `max_epochs`."""
    x = np.linspace(-1, 1, 32, dtype=np.float32)[:, None]
    y = 2.0 * x[:, 0]
    lik = bdl.likelihoods.Gaussian(scale=0.1)
    post = bdl.fit("map", bdl.models.MLP((4,)), lik, (x, y), key=jax.random.key(0))
    assert post.info["converged"] and post.info["history"]["stopped"] == "converged"
    with pytest.warns(bdl.NotConvergedWarning, match="max_epochs"):
        capped = bdl.fit("map", bdl.models.MLP((4,)), lik, (x, y), key=jax.random.key(0),
                         max_epochs=3)
    assert not capped.info["converged"] and capped.info["history"]["stopped"] == "cap"
    fixed = bdl.fit("map", bdl.models.MLP((4,)), lik, (x, y), key=jax.random.key(0), epochs=3)
    assert fixed.info["history"]["stopped"] == "budget"  # a budget the user chose: no warning
