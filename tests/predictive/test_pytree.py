"""Every kind is a pytree: through jit, vmap, lax.scan; compiled once per shape; take()."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bdl import Predictive


@functools.cache
def _kinds(seed):
    """One predictive of each kind with batch shape (3,); same shapes for every seed."""
    k = jax.random.split(jax.random.key(seed), 3)
    loc = jax.random.normal(k[0], (4, 3))
    return {
        "point": Predictive.point(loc[0]),
        "mixture": Predictive.gaussian_mixture(loc, jnp.exp(loc), jnp.array([0.1, 0.2, 0.3, 0.4])),
        "samples": Predictive.from_samples(loc),
        "categorical": Predictive.categorical(logits=jax.random.normal(k[1], (4, 3, 5))),
    }


def _stat(pred):
    """A summary that exercises each kind's main path, shape (3,)."""
    if pred.is_classification:
        return pred.entropy() + pred.log_prob(jnp.array([0, 1, 4]))
    return pred.quantile(0.3) + pred.cdf(0.1) + pred.mean()


KINDS = list(_kinds(0))


@pytest.mark.parametrize("kind", KINDS)
def test_jit_and_round_trip(kind):
    pred = _kinds(0)[kind]
    same = jax.jit(lambda p: p)(pred)
    assert type(same) is type(pred) and same.batch_shape == pred.batch_shape
    np.testing.assert_allclose(jax.jit(_stat)(pred), _stat(pred), rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_vmap_over_stacked_seeds(kind):
    p1, p2 = _kinds(1)[kind], _kinds(2)[kind]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), p1, p2)
    out = jax.vmap(_stat)(stacked)
    np.testing.assert_allclose(out, jnp.stack([_stat(p1), _stat(p2)]), rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_scan_carry(kind):
    pred = _kinds(0)[kind]

    def step(carry, _):
        return carry, _stat(carry)

    final, stats = jax.lax.scan(step, pred, None, length=2)
    assert type(final) is type(pred)
    np.testing.assert_allclose(stats, jnp.stack([_stat(pred)] * 2), rtol=1e-5)


def test_build_inside_jit_and_vmap():
    # validation needs values, so it is skipped on tracers and traced code still runs
    f = lambda loc, scale: Predictive.gaussian(loc, scale).cdf(0.0)
    np.testing.assert_allclose(jax.jit(f)(jnp.zeros(3), jnp.ones(3)), 0.5)
    np.testing.assert_allclose(jax.vmap(f)(jnp.zeros((2, 3)), jnp.ones((2, 3))), 0.5)


def test_quantile_compiles_once_for_same_shapes():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def quantile(pred, q):
        return pred.quantile(q)

    chex.clear_trace_counter()
    q = jnp.array([[0.1], [0.9]])
    for seed in (1, 2):
        assert quantile(_kinds(seed)["mixture"], q).shape == (2, 3)
    with pytest.raises(AssertionError, match="traced"):
        quantile(Predictive.gaussian(jnp.zeros(4), 1.0), q)  # a new shape retraces


def _summary(pred):
    """A per-element summary with no batch-shaped arguments."""
    if pred.is_classification:
        return pred.entropy() + pred.probs()[..., 0]
    return pred.quantile(0.3) + pred.cdf(0.1) + pred.mean()


@pytest.mark.parametrize("kind", KINDS)
def test_take_selects_batch_elements(kind):
    pred = _kinds(0)[kind]
    full = _summary(pred)
    one = pred.take(1)
    assert type(one) is type(pred) and one.batch_shape == ()
    np.testing.assert_allclose(_summary(one), full[1], rtol=1e-5)
    two = jax.jit(lambda p: p.take(jnp.array([2, -3]), axis=-1))(pred)
    assert two.batch_shape == (2,)
    np.testing.assert_allclose(_summary(two), full[jnp.array([2, 0])], rtol=1e-5)


def test_take_on_a_two_dimensional_batch():
    loc = jnp.arange(24.0).reshape(2, 3, 4)  # [S, days, routes]
    pred = Predictive.gaussian_mixture(loc, 1.0)
    route = pred.take(2, axis=-1)
    assert route.batch_shape == (3,)
    np.testing.assert_allclose(route.mean(), pred.mean()[:, 2])
