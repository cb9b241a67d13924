"""Deep ensembles: vmapped members, mixture predictive, variants, heteroscedastic noise."""

import jax
import jax.numpy as jnp
import numpy as np

import bdl


def _data(n=128, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(n, 1)).astype(np.float32)
    y = (np.sin(2 * x[:, 0]) + 0.1 * rng.normal(size=n)).astype(np.float32)
    return x, y


def test_ensemble_predictive_is_the_mixture_of_its_members(key):
    x, y = _data()
    post = bdl.fit("ensemble", bdl.models.MLP((16,)), bdl.likelihoods.Gaussian(), (x, y),
                   key=key, epochs=30, num_members=4)
    pred = post.predict(x)
    members = [post.member(i).predict(x) for i in range(4)]
    explicit = bdl.Predictive.gaussian_mixture(
        jnp.stack([m.mean() for m in members]), jnp.stack([m.std() for m in members])
    )
    np.testing.assert_allclose(pred.mean(), explicit.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.variance(), explicit.variance(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(pred.cdf(0.3), explicit.cdf(0.3), atol=1e-6)
    # members differ (different initialisations) and the predictive carries that spread
    means = np.stack([np.asarray(m.mean()) for m in members])
    assert np.min(np.std(means, axis=0)) > 0
    assert float(jnp.mean(pred.epistemic_variance())) > 0


def test_seed_batched_fits_equal_single_fits(key):
    """vmap is only a batching device: a seed's result does not depend on the other seeds."""
    x, y = _data()
    lik, model = bdl.likelihoods.Gaussian(), bdl.models.MLP((8,))
    keys = jax.random.split(key, 3)
    for method, kw in [("map", {}), ("ensemble", {"num_members": 2, "bootstrap": True})]:
        kw = dict(epochs=10, batch_size=32, validation_fraction=0.25, **kw)
        batched = bdl.approximators.fit_seeds(method, model, lik, (x, y), keys=keys, **kw)
        assert len(batched) == 3
        for s in (0, 2):
            alone = bdl.fit(method, model, lik, (x, y), key=keys[s], **kw)
            np.testing.assert_allclose(batched[s].predict(x).mean(), alone.predict(x).mean(),
                                       rtol=2e-5, atol=2e-6)
        assert not np.allclose(batched[0].predict(x).mean(), batched[1].predict(x).mean())


def test_bootstrap_and_random_prior_variants_fit_and_differ(key):
    x, y = _data()
    lik, model = bdl.likelihoods.Gaussian(), bdl.models.MLP((8,))
    plain = bdl.fit("ensemble", model, lik, (x, y), key=key, epochs=20, num_members=3)
    boot = bdl.fit("ensemble", model, lik, (x, y), key=key, epochs=20, num_members=3,
                   bootstrap=True)
    prior = bdl.fit("ensemble", model, lik, (x, y), key=key, epochs=20, num_members=3,
                    random_prior_scale=1.0)
    assert not np.allclose(plain.predict(x).mean(), boot.predict(x).mean())
    # the anchor network is frozen: the same after 1 and after 20 epochs; the rest trains
    short = bdl.fit("ensemble", model, lik, (x, y), key=key, epochs=1, num_members=3,
                    random_prior_scale=1.0)
    jax.tree.map(np.testing.assert_array_equal, prior.particles["net"]["anchor"],
                 short.particles["net"]["anchor"])
    assert not np.allclose(prior.particles["net"]["trainable"]["layers"][0]["kernel"],
                           short.particles["net"]["trainable"]["layers"][0]["kernel"])


def test_heteroscedastic_gaussian_learns_the_noise_curve(key):
    rng = np.random.default_rng(0)
    n = 2000
    x = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    true_scale = lambda x: 0.05 + 0.5 * np.abs(x)
    y = (x[:, 0] + true_scale(x[:, 0]) * rng.normal(size=n)).astype(np.float32)
    post = bdl.fit("map", bdl.models.MLP((32, 32), out=2, activation="tanh"),
                   bdl.likelihoods.Gaussian("heteroscedastic"), (x, y), key=key,
                   epochs=1500, learning_rate=1e-2)
    grid = np.linspace(-0.9, 0.9, 7, dtype=np.float32)[:, None]
    got = np.sqrt(np.asarray(post.predict(grid).aleatoric_variance()))
    np.testing.assert_allclose(got, true_scale(grid[:, 0]), rtol=0.2, atol=0.03)


def test_ensemble_accepts_an_already_built_nnx_module():
    """Members of a built NNX module start from random permutations of its weights, so
    they differ, and the fit still recovers the line."""
    from flax import nnx

    x = jnp.linspace(-1.0, 1.0, 40)[:, None]
    y = 2.0 * x[:, 0] + 0.5
    model = bdl.models.MLP(hidden=(8,)).module(1, rngs=nnx.Rngs(0))
    post = bdl.fit("ensemble", model, bdl.likelihoods.Gaussian(scale=0.1), (x, y),
                   key=jax.random.key(0), num_members=3, epochs=300)
    first = np.asarray(post.particles["net"]["layers"][0]["kernel"])
    assert first.shape[0] == 3 and not np.allclose(first[0], first[1])
    assert post.predict(x).mean().shape == (40,)
    assert float(jnp.max(jnp.abs(post.predict(x).mean() - y))) < 0.05
