"""Model adapters: NNX and Linen give the same functional network; stateful models refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen, nnx

import bdl


class LinenMLP(linen.Module):
    @linen.compact
    def __call__(self, x):
        x = jnp.tanh(linen.Dense(16, name="hidden")(x))
        return linen.Dense(1, name="head")(x)


class NNXMLP(nnx.Module):
    def __init__(self, *, rngs):
        self.hidden = nnx.Linear(2, 16, rngs=rngs)
        self.head = nnx.Linear(16, 1, rngs=rngs)

    def __call__(self, x):
        return self.head(jnp.tanh(self.hidden(x)))


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype(np.float32)
    return x, (x[:, 0] * x[:, 1]).astype(np.float32)


def test_nnx_and_linen_versions_train_to_the_same_result(key):
    x, y = _data()
    init = bdl.models.as_network(lambda rngs: NNXMLP(rngs=rngs), x).init(key)
    kw = dict(key=key, epochs=50, batch_size=16, learning_rate=1e-2, init_params=init)
    lik = bdl.likelihoods.Gaussian()
    a = bdl.fit("map", lambda rngs: NNXMLP(rngs=rngs), lik, (x, y), **kw)
    b = bdl.fit("map", LinenMLP(), lik, (x, y), **kw)  # same tree: {hidden, head}{kernel, bias}
    np.testing.assert_allclose(a.predict(x).mean(), b.predict(x).mean(), rtol=1e-5, atol=1e-5)
    # an already-built NNX instance works for MAP too, starting from its own parameters
    c = bdl.fit("map", NNXMLP(rngs=nnx.Rngs(0)), lik, (x, y), key=key, epochs=5)
    assert c.predict(x).batch_shape == (64,)


def test_shuffled_init_permutes_each_array_of_a_built_module(key):
    """A built NNX module's members: every array a permutation of the module's own, arrays
    with a single value (zero biases) unchanged, different keys different draws."""
    from bdl.models import as_network, with_shuffled_init

    x, _ = _data()
    network = as_network(NNXMLP(rngs=nnx.Rngs(0)), x[:1])
    assert not network.reinitialisable
    shuffled = with_shuffled_init(network)
    own, a, b = network.init(key), shuffled.init(key), shuffled.init(jax.random.key(1))
    for w, wa, wb in zip(jax.tree.leaves(own), jax.tree.leaves(a), jax.tree.leaves(b),
                         strict=True):
        np.testing.assert_array_equal(np.sort(np.ravel(wa)), np.sort(np.ravel(w)))
        if np.unique(np.asarray(w)).size > 1:
            assert not np.array_equal(np.asarray(wa), np.asarray(wb))


def test_mlp_spec_init_is_a_pure_function_of_the_key(key):
    x, _ = _data()
    net = bdl.models.MLP((4, 4), out=3).network(x)
    a, b = net.init(key), net.init(key)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert net.apply(a, x).shape == (64, 3)
    with pytest.raises(ValueError, match="activation"):
        bdl.models.MLP(activation="sigmoidish")
