"""The Gaussian posterior ``N(theta*, P^{-1})``, ``P = s * GGN + diag(prior precision)``.

``s`` is ``1 / sigma^2`` for a homoscedastic Gaussian (whose GGN is stored at unit noise) and
1 otherwise. ``prior`` is one precision per layer group ``[G]`` (a scalar prior is broadcast).
For each curvature structure this module gives the log-determinant of ``P`` (for the marginal
likelihood), a factor of ``P`` for sampling and for the GLM predictive variance, and the dense
covariance (for tests and small models):

- full: the Cholesky factor ``C`` of ``P = C C^T``.
- kron: per layer ``P_l = (Q_a (x) Q_g) diag(s * e_a (x) e_g / N + delta_l) (Q_a (x) Q_g)^T``,
  stored as its eigenvalues ``lam_l`` ``[a_l, g_l]`` and the two eigenvector bases.
- diag: the precision vector.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from bdl.approximators.laplace._curvature import Curvature, DiagGGN, FullGGN, KronGGN, with_bias
from bdl.approximators.laplace._subnet import Subnet


class FullFactor(NamedTuple):
    """``chol``: lower Cholesky factor ``L`` ``[D, D]`` of the posterior precision ``L L^T``;
    ``chol_inv``: ``L^{-1}``, so ``Sigma = L^{-T} L^{-1}`` and predictive variances and draws
    are matrix products (a triangular solve with many right-hand sides is much slower on CPU).
    """

    chol: jax.Array
    chol_inv: jax.Array


class DiagFactor(NamedTuple):
    """``precision``: ``[D]``."""

    precision: jax.Array


class KronFactor(NamedTuple):
    """Per layer: ``lam[l]`` ``[a_l, g_l]`` eigenvalues of the precision block, ``vec_a[l]``,
    ``vec_g[l]`` the eigenvector bases."""

    lam: tuple
    vec_a: tuple
    vec_g: tuple


Factor = FullFactor | DiagFactor | KronFactor


def prior_vector(sub: Subnet, prior: jax.Array) -> jax.Array:
    """Per-parameter prior precision ``[D]`` from a scalar or per-group ``[G]`` ``prior``."""
    groups = jnp.broadcast_to(prior, (len(sub.group_names),))
    return groups[jnp.asarray(sub.group_index)]


def layer_groups(sub: Subnet) -> np.ndarray:
    """The prior group of every KFAC layer ``[L]``."""
    sizes = [(layer.in_features + layer.has_bias) * layer.out_features for layer in sub.layers]
    starts = np.cumsum([0, *sizes[:-1]])
    return np.asarray(sub.group_index)[np.asarray(sub.kron_perm)[starts]]


def _layer_prior(sub: Subnet, prior: jax.Array) -> jax.Array:
    groups = jnp.broadcast_to(prior, (len(sub.group_names),))
    return groups[jnp.asarray(layer_groups(sub))]


def _kron_eigenvalues(curv: KronGGN, scale: jax.Array) -> list[jax.Array]:
    return [scale * jnp.outer(ea, eg) / curv.num_data
            for ea, eg in zip(curv.eig_a, curv.eig_g, strict=True)]


def log_det_precision(sub: Subnet, curv: Curvature, prior: jax.Array, scale: jax.Array
                      ) -> jax.Array:
    """``log det P`` (scalar)."""
    if isinstance(curv, DiagGGN):
        return jnp.sum(jnp.log(scale * curv.ggn + prior_vector(sub, prior)))
    if isinstance(curv, KronGGN):
        delta = _layer_prior(sub, prior)
        return sum(jnp.sum(jnp.log(lam + delta[i]))
                   for i, lam in enumerate(_kron_eigenvalues(curv, scale)))
    return factor_log_det(precision_factor(sub, curv, prior, scale))


def precision_factor(sub: Subnet, curv: Curvature, prior: jax.Array, scale: jax.Array) -> Factor:
    """The factor of ``P`` used for sampling and predictive variances."""
    if isinstance(curv, FullGGN):
        p = scale * curv.ggn + jnp.diag(prior_vector(sub, prior))
        chol = jnp.linalg.cholesky(0.5 * (p + p.T))
        # inverse by LU (LAPACK); XLA's CPU triangular solve is ~100x slower at D ~ 50
        return FullFactor(chol, jnp.tril(jnp.linalg.inv(chol)))
    if isinstance(curv, DiagGGN):
        return DiagFactor(scale * curv.ggn + prior_vector(sub, prior))
    delta = _layer_prior(sub, prior)
    lam = tuple(lam + delta[i] for i, lam in enumerate(_kron_eigenvalues(curv, scale)))
    return KronFactor(lam, curv.vec_a, curv.vec_g)


def factor_log_det(factor: Factor) -> jax.Array:
    if isinstance(factor, FullFactor):
        return 2.0 * jnp.sum(jnp.log(jnp.diagonal(factor.chol)))
    if isinstance(factor, DiagFactor):
        return jnp.sum(jnp.log(factor.precision))
    return sum(jnp.sum(jnp.log(lam)) for lam in factor.lam)


def sample(sub: Subnet, factor: Factor, z: jax.Array) -> jax.Array:
    """Draws of ``theta - theta*`` ``[n, D]`` (flat order) from standard normals ``z``
    ``[n, D]`` (drawn by the caller, so the random-number program is compiled once per shape
    and shared by every posterior)."""
    if isinstance(factor, FullFactor):
        return z @ factor.chol_inv
    if isinstance(factor, DiagFactor):
        return z / jnp.sqrt(factor.precision)
    n, blocks, start = z.shape[0], [], 0
    for lam, qa, qg in zip(factor.lam, factor.vec_a, factor.vec_g, strict=True):
        zl = z[:, start:start + lam.size].reshape(n, *lam.shape) / jnp.sqrt(lam)
        start += lam.size
        blocks.append(jnp.einsum("ij,njk,lk->nil", qa, zl, qg).reshape(n, -1))
    dev = jnp.concatenate(blocks, axis=1)
    return jnp.zeros_like(dev).at[:, jnp.asarray(sub.kron_perm)].set(dev)


def covariance(sub: Subnet, factor: Factor) -> jax.Array:
    """The dense posterior covariance ``[D, D]`` (flat order)."""
    if isinstance(factor, FullFactor):
        return factor.chol_inv.T @ factor.chol_inv
    if isinstance(factor, DiagFactor):
        return jnp.diag(1.0 / factor.precision)
    blocks = []
    for lam, qa, qg in zip(factor.lam, factor.vec_a, factor.vec_g, strict=True):
        q = jnp.kron(qa, qg)
        blocks.append((q / lam.reshape(-1)) @ q.T)
    cov = jsl.block_diag(*blocks)
    perm = jnp.asarray(sub.kron_perm)
    return jnp.zeros_like(cov).at[perm[:, None], perm[None, :]].set(cov)


def variance_from_jacobian(factor: Factor, jac: jax.Array) -> jax.Array:
    """``J Sigma J^T`` ``[N, K, K]`` from per-example Jacobians ``jac`` ``[N, K, D]``."""
    if isinstance(factor, DiagFactor):
        return jnp.einsum("nkd,nld->nkl", jac / factor.precision, jac)
    if isinstance(factor, FullFactor):
        x = jac @ factor.chol_inv.T
        return jnp.einsum("nkd,nld->nkl", x, x)
    raise TypeError("KFAC variances come from the layer taps (variance_from_taps).")


def variance_from_taps(sub: Subnet, factor: Factor, acts: tuple, grads: tuple) -> jax.Array:
    """``J Sigma J^T`` ``[N, K, K]`` for a KFAC or diagonal posterior over dense layers, from
    the dense inputs ``acts`` (per layer ``[N, d_in]``) and output gradients ``grads`` (per layer
    ``[N, K, d_out]``): the Jacobian of a dense layer is ``abar (x) b``, so no ``[N, K, D]``
    Jacobian is formed."""
    if isinstance(factor, KronFactor):
        parts = zip(acts, grads, sub.layers, factor.lam, factor.vec_a, factor.vec_g, strict=True)
        total = 0.0
        for a, b, layer, lam, qa, qg in parts:
            at = with_bias(a, layer.has_bias) @ qa
            bt = b @ qg
            total = total + jnp.einsum("nj,nkj,nlj->nkl", (at**2) @ (1.0 / lam), bt, bt)
        return total
    if isinstance(factor, DiagFactor):
        var = (1.0 / factor.precision)[jnp.asarray(sub.kron_perm)]
        total, start = 0.0, 0
        for a, b, layer in zip(acts, grads, sub.layers, strict=True):
            size = (layer.in_features + layer.has_bias) * layer.out_features
            v = var[start:start + size].reshape(layer.in_features + layer.has_bias, -1)
            start += size
            total = total + jnp.einsum("nj,nkj,nlj->nkl", with_bias(a, layer.has_bias)**2 @ v, b, b)
        return total
    raise TypeError("A full posterior's variances come from per-example Jacobians.")

