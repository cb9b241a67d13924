"""Generalised Gauss-Newton curvature: full, diagonal and Kronecker-factored (KFAC).

With ``L_n`` the square root of the output Fisher (``_likelihood``) and ``J_n`` ``[K, D]`` the
output Jacobian, the GGN is ``H = sum_n w_n J_n^T L_n L_n^T J_n``:

- ``full``: ``[D, D]``, from per-example Jacobians, accumulated over chunks of examples so no
  more than ``chunk_size`` Jacobians exist at once. Networks made of dense layers get them from
  the layer taps (``abar (x) b``, below); others from ``vmap`` of ``jacrev``.
- ``diag``: ``[D]``. For networks made of dense layers it needs no per-example Jacobian: the
  per-example gradient of a dense layer is ``abar (x) b`` (layer input with a bias 1, times the
  back-propagated output vector), so ``diag H`` is ``sum_n abar^2 (x) b^2`` per layer
  (what BackPACK does). Other networks use per-example Jacobians.
- ``kfac``: per dense layer ``H_l ~ (A_l (x) G_l) / N`` with ``A_l = sum_n w_n abar abar^T`` and
  ``G_l = sum_n sum_r b_{n,r} b_{n,r}^T``, ``b_{n,r} = d (L_n[:, r]^T f_n) / d s_l`` obtained by
  one ``vjp`` through the tapped network per Fisher column r. Stored as eigendecompositions.

Flat parameter vectors are in ``ravel_pytree`` order; a KFAC block is in ``[kernel; bias]``
row-major order and ``Subnet.kron_perm`` maps it to the flat order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bdl.approximators.laplace._likelihood import FitTerms, fisher_sqrt, fit_terms
from bdl.approximators.laplace._subnet import Subnet
from bdl.likelihoods import Likelihood
from bdl.models import Params
from bdl.training import Batch


class FullGGN(NamedTuple):
    """``ggn``: ``[D, D]``."""

    ggn: jax.Array


class DiagGGN(NamedTuple):
    """``ggn``: the diagonal ``[D]``."""

    ggn: jax.Array


class KronGGN(NamedTuple):
    """Per dense layer l (tuples over layers): ``eig_a[l]`` ``[a_l]``, ``vec_a[l]``
    ``[a_l, a_l]`` (eigen-pairs of ``A_l``; ``a_l = d_in (+1 with a bias)``), ``eig_g[l]``
    ``[g_l]``, ``vec_g[l]`` ``[g_l, g_l]`` (of ``G_l``); ``num_data``: N (sum of weights)."""

    eig_a: tuple
    vec_a: tuple
    eig_g: tuple
    vec_g: tuple
    num_data: jax.Array


Curvature = FullGGN | DiagGGN | KronGGN


def build_curvature(sub: Subnet, hessian: str, likelihood: Likelihood, chunk_size: int
                    ) -> Callable[[jax.Array, Params, Any, Batch], tuple[Curvature, FitTerms]]:
    """``curvature(theta_flat [D], net_params, lik_params, batch) -> (GGN, FitTerms)``.

    A pure function (jit it); the GGN of a homoscedastic Gaussian is at unit noise.
    """
    use_taps = sub.kron_perm is not None

    def chunk_sums(theta_flat, net_params, lik_params, chunk):
        x, y, w = chunk["x"], chunk["y"], chunk["w"]
        inputs = sub.features(net_params, x)
        theta = sub.unravel(theta_flat)
        if use_taps:
            f, acts, grads = _taps(sub, theta, inputs, lambda f: fisher_sqrt(
                likelihood, f, y, lik_params) * jnp.sqrt(w)[:, None, None])
            abar = [with_bias(a, layer.has_bias) for a, layer in zip(acts, sub.layers, strict=True)]
            if hessian == "kfac":
                sums = ([jnp.einsum("ni,nj->ij", w[:, None] * a, a) for a in abar],
                        [jnp.einsum("rni,rnj->ij", b, b) for b in grads])
            elif hessian == "diag":
                sums = jnp.concatenate([jnp.einsum("ni,rnj->ij", a**2, b**2).reshape(-1)
                                        for a, b in zip(abar, grads, strict=True)])
                sums = sums[jnp.asarray(inverse_perm(sub))]
            else:
                jl = jacobian_from_taps(sub, acts, tuple(jnp.swapaxes(g, 0, 1) for g in grads))
                jl = jl.reshape(-1, sub.num_params)
                sums = jl.T @ jl
        else:
            f = sub.apply(theta, inputs)
            jac = per_example_jacobian(sub, theta_flat, inputs)  # [N, K, D]
            lw = fisher_sqrt(likelihood, f, y, lik_params) * jnp.sqrt(w)[:, None, None]
            jl = jnp.einsum("nkd,nkr->nrd", jac, lw).reshape(-1, sub.num_params)
            sums = jl.T @ jl if hessian == "full" else jnp.sum(jl**2, axis=0)
        return sums, fit_terms(likelihood, f, y, w, lik_params)

    def curvature(theta_flat, net_params, lik_params, batch):
        sums, terms = chunked_sum(
            lambda c: chunk_sums(theta_flat, net_params, lik_params, c), batch, chunk_size)
        if hessian == "full":
            return FullGGN(sums), terms
        if hessian == "diag":
            return DiagGGN(sums), terms
        eig_a, vec_a = zip(*[jnp.linalg.eigh(a) for a in sums[0]], strict=True)
        eig_g, vec_g = zip(*[jnp.linalg.eigh(g) for g in sums[1]], strict=True)
        clip = lambda e: tuple(jnp.maximum(v, 0.0) for v in e)
        return KronGGN(clip(eig_a), vec_a, clip(eig_g), vec_g, jnp.sum(batch["w"])), terms

    return curvature


def _taps(sub: Subnet, theta: Params, inputs, cotangents: Callable[[jax.Array], jax.Array]):
    """Outputs ``f`` ``[N, K]``, dense inputs (per layer ``[N, d_in]``) and, per layer,
    ``[R, N, d_out]`` gradients of ``C[:, :, r] . f`` w.r.t. the layer outputs, where
    ``C = cotangents(f)`` ``[N, K, R]``."""
    n = jax.tree.leaves(inputs)[0].shape[0]
    zeros = tuple(jnp.zeros((n, layer.out_features), _dtype(theta)) for layer in sub.layers)
    f, pullback, acts = jax.vjp(lambda e: sub.tapped(theta, inputs, e), zeros, has_aux=True)
    c = cotangents(f)
    (grads,) = jax.vmap(pullback, in_axes=2)(c)
    return f, acts, grads


def output_gradients(sub: Subnet, theta: Params, inputs) -> tuple[jax.Array, tuple, tuple]:
    """``f`` ``[N, K]``, dense inputs and per layer ``[N, K, d_out]``: the Jacobian of every
    output w.r.t. that layer's outputs (for the KFAC / diagonal GLM predictive)."""
    f, acts, grads = _taps(sub, theta, inputs,
                           lambda f: jnp.broadcast_to(jnp.eye(f.shape[-1], dtype=f.dtype),
                                                      (*f.shape, f.shape[-1])))
    return f, acts, tuple(jnp.swapaxes(g, 0, 1) for g in grads)


def per_example_jacobian(sub: Subnet, theta_flat: jax.Array, inputs) -> jax.Array:
    """``[N, K, D]``: the Jacobian of each example's outputs w.r.t. the flat parameters."""

    def one(v, inp):
        return sub.apply(sub.unravel(v), jax.tree.map(lambda a: a[None], inp))[0]

    return jax.vmap(jax.jacrev(one), in_axes=(None, 0))(theta_flat, inputs)


def jacobian_from_taps(sub: Subnet, acts: tuple, grads: tuple) -> jax.Array:
    """``[N, K, D]`` Jacobians (flat order) of a network of dense layers from its dense inputs
    (per layer ``[N, d_in]``) and output gradients (per layer ``[N, K, d_out]``): a dense
    layer's Jacobian is ``abar (x) b``, so no per-example backward pass is needed."""
    blocks = []
    for a, b, layer in zip(acts, grads, sub.layers, strict=True):
        jl = jnp.einsum("ni,nkj->nkij", with_bias(a, layer.has_bias), b)
        blocks.append(jl.reshape(*b.shape[:2], -1))
    return jnp.concatenate(blocks, axis=-1)[..., jnp.asarray(inverse_perm(sub))]


def inverse_perm(sub: Subnet) -> np.ndarray:
    """``[D]``: for each flat position its index in the KFAC ordering."""
    return np.argsort(np.asarray(sub.kron_perm))


def with_bias(a: jax.Array, has_bias: bool) -> jax.Array:
    """``[N, d]`` -> ``[N, d + 1]`` with a column of ones when the layer has a bias."""
    return jnp.concatenate([a, jnp.ones_like(a[:, :1])], axis=1) if has_bias else a



def _dtype(tree) -> Any:
    return jnp.result_type(*jax.tree.leaves(tree))


def chunked_sum(fn: Callable[[Batch], Any], batch: Batch, chunk_size: int) -> Any:
    """``sum`` over chunks of ``batch`` of ``fn(chunk)`` (a pytree of sums).

    Chunks are ``lax.scan``-ed; the last one is padded with copies of the last example at
    weight zero, so ``fn`` must weight every example by ``chunk["w"]``.
    """
    n = batch["x"].shape[0]
    if n <= chunk_size:
        return fn(batch)
    num = -(-n // chunk_size)
    pad = num * chunk_size - n

    def split(a, fill_last=True):
        if pad:
            tail = jnp.repeat(a[-1:], pad, axis=0) if fill_last else jnp.zeros((pad, *a.shape[1:]), a.dtype)
            a = jnp.concatenate([a, tail])
        return a.reshape(num, chunk_size, *a.shape[1:])

    chunks = {k: split(v, k != "w") for k, v in batch.items()}
    first = jax.tree.map(lambda a: a[0], chunks)
    rest = jax.tree.map(lambda a: a[1:], chunks)
    total = fn(first)

    def step(acc, chunk):
        return jax.tree.map(jnp.add, acc, fn(chunk)), None

    total, _ = jax.lax.scan(step, total, rest)
    return total
