"""Laplace curvature against naive references, on every kind of Flax model bdl accepts.

- the output Fisher of each likelihood equals the expected Hessian of its NLL;
- the full GGN equals ``sum_n J_n^T Lambda_n J_n`` from whole-batch ``jax.jacfwd``;
- the diagonal GGN is the diagonal of the full one (the dense-layer shortcut is exact);
- KFAC on one example is exact, so it must equal the full GGN's layer blocks;
- the last-layer GGN is the last layer's block of the all-weights GGN.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen, nnx
from jax.flatten_util import ravel_pytree

import bdl
from bdl.approximators.laplace._curvature import build_curvature
from bdl.approximators.laplace._dense import get_path
from bdl.approximators.laplace._likelihood import fisher_sqrt
from bdl.approximators.laplace._subnet import build_subnet
from bdl.models import as_network
from bdl.training import prepare_data


class LinenMLP(linen.Module):
    @linen.compact
    def __call__(self, x):
        x = linen.tanh(linen.Dense(5)(x))
        x = linen.relu(linen.Dense(4, use_bias=False)(x))
        return linen.Dense(2, name="head")(x)


class NNXResidual(nnx.Module):
    """A non-sequential NNX model: a skip connection around the hidden layer."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.inp = nnx.Linear(3, 4, rngs=rngs)
        self.hidden = nnx.Linear(4, 4, rngs=rngs)
        self.out = nnx.Linear(4, 2, rngs=rngs)

    def __call__(self, x):
        h = jnp.tanh(self.inp(x))
        return self.out(h + jnp.tanh(self.hidden(h)))


MODELS = {
    "bdl_mlp": lambda: bdl.models.MLP((5, 4), out=2, activation="tanh"),
    "linen": LinenMLP,
    "nnx_factory": lambda: (lambda rngs: NNXResidual(rngs=rngs)),
    "nnx_instance": lambda: NNXResidual(rngs=nnx.Rngs(3)),
}


def _setup(model, lik, n=6, out=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    if isinstance(lik, bdl.likelihoods.Categorical):
        y = rng.integers(0, out, size=n)
    else:
        y = rng.normal(size=(n, out // 2 if lik.noise == "heteroscedastic" else out))
        y = y.astype(np.float32)
    network = as_network(model, x[:1])
    params = network.init(jax.random.key(seed))
    params = jax.jit(lambda t: jax.tree.map(
        lambda p: p + 0.3 * jax.random.normal(jax.random.key(1), p.shape), t))(params)
    return network, params, prepare_data((x, y), lik, network, jax.random.key(0))


def _ggn(network, params, batch, lik, hessian, subset="all"):
    sub = build_subnet(network, params, batch["x"], subset)
    theta, _ = ravel_pytree(sub.theta(params))
    curv, _ = jax.jit(build_curvature(sub, hessian, lik, 1024))(theta, params, {}, batch)
    return sub, curv


def _kron_dense(sub, curv):
    blocks = []
    for ea, qa, eg, qg in zip(curv.eig_a, curv.vec_a, curv.eig_g, curv.vec_g, strict=True):
        a, g = (qa * ea) @ qa.T, (qg * eg) @ qg.T
        blocks.append(np.kron(a, g) / float(curv.num_data))
    d = sum(b.shape[0] for b in blocks)
    dense = np.zeros((d, d))
    start = 0
    for b in blocks:
        dense[start:start + len(b), start:start + len(b)] = b
        start += len(b)
    out = np.zeros_like(dense)
    perm = np.asarray(sub.kron_perm)
    out[np.ix_(perm, perm)] = dense
    return out


def _block_mask(sub):
    mask = np.zeros((sub.num_params, sub.num_params), bool)
    start = 0
    for layer in sub.layers:
        size = (layer.in_features + layer.has_bias) * layer.out_features
        idx = np.asarray(sub.kron_perm)[start:start + size]
        mask[np.ix_(idx, idx)] = True
        start += size
    return mask


def _naive_ggn(network, params, batch, lik):
    return np.asarray(jax.jit(lambda p, b: _naive_ggn_traced(network, p, b, lik))(params, batch))


def _naive_ggn_traced(network, params, batch, lik):
    flat, unravel = ravel_pytree(params)
    f = network.apply(params, batch["x"])
    jac = jax.jacfwd(lambda v: network.apply(unravel(v), batch["x"]))(flat)  # [N, K, D]
    if isinstance(lik, bdl.likelihoods.Categorical):
        p = jax.nn.softmax(f)
        lam = jax.vmap(jnp.diag)(p) - p[:, :, None] * p[:, None, :]
    elif lik.noise == "heteroscedastic":
        s = jax.nn.softplus(f[:, 1:]) + lik.min_scale
        lam = jax.vmap(jnp.diag)(jnp.concatenate(
            [1 / s**2, 2 * jax.nn.sigmoid(f[:, 1:]) ** 2 / s**2], axis=1))
    else:
        lam = jnp.broadcast_to(jnp.eye(f.shape[1]), (len(f), f.shape[1], f.shape[1]))
    return jnp.einsum("nkd,nkl,nle->de", jac, lam, jac)


def _close(a, b, rtol=2e-4):
    np.testing.assert_allclose(a, b, atol=rtol * float(np.max(np.abs(b))))


def test_output_fisher_is_the_expected_hessian_of_the_nll():
    f = jnp.array([[0.3, -0.7], [-1.2, 2.0], [0.0, 0.4]])
    nodes, weights = np.polynomial.hermite_e.hermegauss(4)  # exact: the NLL is quadratic in y
    weights = weights / np.sqrt(2 * np.pi)

    het = bdl.likelihoods.Gaussian("heteroscedastic")
    root = jax.jit(lambda f: fisher_sqrt(het, f, None, {}))(f)
    hess = jax.jit(jax.vmap(jax.vmap(jax.hessian(
        lambda fn, y: -het.log_likelihood(fn[None], y[None, None], {})[0]), (None, 0))))
    mu, s = f[:, 0], jax.nn.softplus(f[:, 1]) + het.min_scale
    expected = jnp.einsum("t,ntkl->nkl", weights, hess(f, mu[:, None] + s[:, None] * nodes))
    np.testing.assert_allclose(jnp.einsum("nkr,nlr->nkl", root, root), expected, rtol=1e-5,
                               atol=1e-6)

    cat = bdl.likelihoods.Categorical()
    logits = jnp.array([[0.3, -0.7, 1.1], [2.0, 0.0, -1.0]])
    root = jax.jit(lambda f: fisher_sqrt(cat, f, None, {}))(logits)
    hess = jax.jit(jax.vmap(jax.vmap(jax.hessian(
        lambda fn, y: -cat.log_likelihood(fn[None], y[None], {})[0]), (None, 0)), (0, None)))
    expected = jnp.einsum("nc,nckl->nkl", jax.nn.softmax(logits), hess(logits, jnp.arange(3)))
    np.testing.assert_allclose(jnp.einsum("nkr,nlr->nkl", root, root), expected, rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("lik", [bdl.likelihoods.Gaussian(), bdl.likelihoods.Gaussian("heteroscedastic"),
                                 bdl.likelihoods.Categorical()], ids=["homo", "hetero", "categorical"])
def test_full_and_diag_ggn_equal_naive_jacobian_products(lik):
    network, params, batch = _setup(MODELS["bdl_mlp"](), lik)
    naive = _naive_ggn(network, params, batch, lik)
    _, full = _ggn(network, params, batch, lik, "full")
    _close(full.ggn, naive)
    _, diag = _ggn(network, params, batch, lik, "diag")
    _close(diag.ggn, np.diag(naive))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_dense_layers_are_found_in_every_model_kind(name):
    lik = bdl.likelihoods.Gaussian()
    network, params, batch = _setup(MODELS[name](), lik, n=1)
    sub, full = _ggn(network, params, batch, lik, "full")
    full = np.asarray(full.ggn)
    # KFAC is exact on one example: the layer blocks of the full GGN
    _, kron = _ggn(network, params, batch, lik, "kfac")
    _close(_kron_dense(sub, kron), np.where(_block_mask(sub), full, 0.0))
    # last layer: that layer's block of the all-weights GGN
    ll_sub, ll = _ggn(network, params, batch, lik, "full", subset="last_layer")
    flat_index = jax.tree.unflatten(jax.tree.structure(params), [
        np.arange(s, s + np.size(leaf)).reshape(np.shape(leaf)) for s, leaf in zip(
            np.cumsum([0] + [np.size(v) for v in jax.tree.leaves(params)[:-1]]),
            jax.tree.leaves(params), strict=True)])
    idx = np.concatenate([np.ravel(v) for v in jax.tree.leaves(
        get_path(flat_index, ll_sub.last_layer_path))])
    _close(ll.ggn, full[np.ix_(idx, idx)])
