"""The model protocol: ``forward(params, state, x, *, key, train) -> (out, new_state)``.

BatchNorm statistics are state (updated by training-mode passes, frozen in prediction),
dropout draws from an explicit key, and MAP / ensembles carry the state in their posterior.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen, nnx

import bdl
from bdl.models import as_network


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = (3.0 + 2.0 * rng.normal(size=(n, 2))).astype(np.float32)
    y = (np.sin(x[:, 0]) + 0.1 * rng.normal(size=n)).astype(np.float32)
    return x, y


class NNXNet(nnx.Module):
    def __init__(self, *, rngs):
        self.dense = nnx.Linear(2, 8, rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.out = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, x):
        return self.out(self.drop(nnx.relu(self.bn(self.dense(x)))))


class LinenNet(linen.Module):
    @linen.compact
    def __call__(self, x, train: bool = False):
        h = linen.BatchNorm(use_running_average=not train)(linen.Dense(8)(x))
        h = linen.Dropout(0.5, deterministic=not train)(linen.relu(h))
        return linen.Dense(1)(h)


@pytest.mark.parametrize("model", [lambda rngs: NNXNet(rngs=rngs), LinenNet()],
                         ids=["nnx", "linen"])
def test_forward_threads_state_and_randomness(model, key):
    x, _ = _data()
    net = as_network(model, x[:1])
    assert net.has_state and net.stochastic
    params, state = net.init(key), net.init_state(key)
    with pytest.raises(ValueError, match="key"):
        net.forward(params, state, x, train=True)
    a, new_state = net.forward(params, state, x, key=jax.random.key(1), train=True)
    b, _ = net.forward(params, state, x, key=jax.random.key(2), train=True)
    assert not np.allclose(a, b)  # dropout draws from the key
    moved = [not np.allclose(u, v) for u, v in
             zip(jax.tree.leaves(state), jax.tree.leaves(new_state), strict=True)]
    assert any(moved)  # the running statistics moved towards the batch's
    p1, same = net.forward(params, new_state, x)
    p2, _ = net.forward(params, new_state, x, key=jax.random.key(3))
    np.testing.assert_array_equal(p1, p2)  # prediction: no dropout, frozen statistics
    assert same is new_state
    np.testing.assert_array_equal(net.apply(params, x, new_state), p1)
    with pytest.raises(ValueError, match="state"):
        net.apply(params, x)


@pytest.mark.parametrize("method", ["map", "ensemble"])
def test_map_and_ensemble_carry_batchnorm_state(method, key):
    """Training updates the statistics; the posterior predicts with the running ones, as
    the model does in eval mode with the fitted parameters."""
    x, y = _data()
    post = bdl.fit(method, lambda rngs: NNXNet(rngs=rngs), bdl.likelihoods.Gaussian(),
                   (x, y), key=key, epochs=50, num_members=2) if method == "ensemble" else \
        bdl.fit(method, lambda rngs: NNXNet(rngs=rngs), bdl.likelihoods.Gaussian(), (x, y),
                key=key, epochs=50)
    mean = np.asarray(post.particles["state"]["bn"]["mean"][0])
    assert np.max(np.abs(mean)) > 0.1  # moved away from its zero initialisation
    # rebuild the model of particle 0 by hand and run it in eval mode
    module = NNXNet(rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    first = lambda t: jax.tree.map(lambda a: a[0], t)
    nnx.replace_by_pure_dict(params, first(post.particles["net"]))
    stats = nnx.state(module, nnx.BatchStat)
    nnx.replace_by_pure_dict(stats, first(post.particles["state"]))
    module = nnx.merge(graphdef, params, rest)
    nnx.update(module, stats)
    module.eval()
    want = np.asarray(module(jnp.asarray(x)))[:, 0]
    np.testing.assert_allclose(post.member(0).predict(x).mean(), want, rtol=1e-5, atol=1e-5)


def test_methods_that_cannot_carry_state_say_so(key):
    x, y = _data()
    with pytest.raises(ValueError, match="BatchNorm.*'laplace'.*ensemble"):
        bdl.fit("laplace", LinenNet(), bdl.likelihoods.Gaussian(), (x, y), key=key)


def test_save_load_keeps_the_state(key, tmp_path):
    x, y = _data()
    post = bdl.fit("map", LinenNet(), bdl.likelihoods.Gaussian(), (x, y), key=key, epochs=20)
    path = bdl.approximators.save(post, tmp_path / "bn")
    back = bdl.approximators.load(path, LinenNet(), bdl.likelihoods.Gaussian())
    np.testing.assert_allclose(back.predict(x).mean(), post.predict(x).mean(), rtol=1e-6)


def test_linen_batchnorm_fixed_to_batch_statistics_gets_a_clear_error(key):
    class AlwaysTraining(linen.Module):
        @linen.compact
        def __call__(self, x):
            return linen.Dense(1)(linen.BatchNorm(use_running_average=False)(x))

    x, y = _data()
    with pytest.raises(ValueError, match="`train` argument"):
        bdl.fit("map", AlwaysTraining(), bdl.likelihoods.Gaussian(), (x, y), key=key, epochs=2)
