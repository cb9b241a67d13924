"""The linearised (GLM) Gaussian predictive, with its aleatoric / epistemic split.

Under the linearised network a regression output is Gaussian: ``y | x ~ N(f*(x), V + s^2)``
with ``V = J Sigma J^T`` the parameter (epistemic) part and ``s^2`` the noise (aleatoric).
A one-component ``GaussianMixture`` with the total scale would have the right distribution
but report ``epistemic_variance() == 0``: the mixture only counts the spread of its component
means as epistemic. So each component here is a continuous mixture over its own mean,
``N(loc_k + e, scale_k^2)`` with ``e ~ N(0, loc_var_k)``, which is the Gaussian
``N(loc_k, scale_k^2 + loc_var_k)``:

- ``aleatoric_variance() = sum_k w_k scale_k^2`` (the noise),
- ``epistemic_variance() = sum_k w_k (loc_k - mean)^2 + sum_k w_k loc_var_k``,

the same split a Monte Carlo predictive over parameter draws estimates.

This is ``Predictive.gaussian_mixture(loc, noise_scale, loc_var=...)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bdl.predictive import Predictive


def glm_gaussian(f: jax.Array, var: jax.Array, noise_scale: jax.Array) -> Predictive:
    """Homoscedastic linearised predictive: outputs ``f`` ``[N, D]``, their covariance ``var``
    ``[N, D, D]``, noise sd ``noise_scale`` (scalar): batch ``[N]`` (``[N, D]`` for D > 1)."""
    loc_var = jnp.diagonal(var, axis1=1, axis2=2)
    noise = jnp.broadcast_to(noise_scale, f.shape).astype(f.dtype)
    if f.shape[-1] == 1:
        f, loc_var, noise = f[..., 0], loc_var[..., 0], noise[..., 0]
    return Predictive.gaussian_mixture(f[None], noise[None], loc_var=loc_var[None])


def glm_heteroscedastic(f: jax.Array, var: jax.Array, z: jax.Array, min_scale: float
                        ) -> Predictive:
    """Heteroscedastic linearised predictive from outputs ``f = (mu, rho)`` ``[N, 2D]``, their
    covariance ``var`` ``[N, 2D, 2D]`` and standard normals ``z`` ``[S, N, D]``.

    Only the raw scale ``rho`` is drawn: ``rho_s = rho* + R z_s`` with ``R R^T = V_rr``. Given
    ``rho`` the linearised mean is Gaussian, ``mu | rho ~ N(mu* + B z_s, V_mm - B B^T)`` with
    ``B = V_mr R^{+T}`` (Rao-Blackwellisation), so component ``s`` is ``N(mu* + B z_s,
    softplus(rho_s)^2 + diag(V_mm - B B^T))`` and the epistemic variance is
    ``diag(V_mm) = diag(J_mu Sigma J_mu^T)`` up to the Monte Carlo error of the ``B z`` part
    alone (none when mean and scale are uncorrelated). The aleatoric variance is the noise
    ``E[(softplus(rho) + min_scale)^2]`` under the linearised ``rho``.
    """
    d = f.shape[-1] // 2
    mu, rho = f[:, :d], f[:, d:]
    v_mm, v_mr, v_rr = var[:, :d, :d], var[:, :d, d:], var[:, d:, d:]
    evals, evecs = jnp.linalg.eigh(v_rr)
    tiny = jnp.finfo(f.dtype).eps * jnp.max(evals, axis=-1, keepdims=True)
    keep = evals > tiny
    root = evecs * jnp.sqrt(jnp.where(keep, evals, 0.0))[:, None, :]          # R   [N, D, D]
    inv_root = evecs * jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, evals, 1.0)), 0.0
                                 )[:, None, :]                                 # R^{+T}
    b = jnp.einsum("nij,njk->nik", v_mr, inv_root)                             # B   [N, D, D]
    cond_var = jnp.diagonal(v_mm - jnp.einsum("nik,njk->nij", b, b), axis1=1, axis2=2)
    loc = mu[None] + jnp.einsum("nij,snj->sni", b, z)
    noise = jax.nn.softplus(rho[None] + jnp.einsum("nij,snj->sni", root, z)) + min_scale
    loc_var = jnp.broadcast_to(cond_var[None], loc.shape)
    if d == 1:
        loc, noise, loc_var = loc[..., 0], noise[..., 0], loc_var[..., 0]
    return Predictive.gaussian_mixture(loc, noise, loc_var=loc_var)
