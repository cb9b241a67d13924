"""What the Laplace approximation needs from a likelihood: the output-space curvature.

The generalised Gauss-Newton (GGN) is ``sum_n J_n^T Lambda_n J_n`` with ``J_n`` ``[K, D]`` the
Jacobian of the outputs and ``Lambda_n`` ``[K, K]`` the Fisher of the likelihood in the output
coordinates. Everything downstream uses a square root ``Lambda_n = L_n L_n^T``, ``L_n``
``[K, R]``:

- Gaussian, homoscedastic, scale sigma: ``Lambda = I / sigma^2``. The curvature is computed at
  unit noise (``L = I``) and multiplied by ``1 / sigma^2`` later, so the noise can be tuned
  without recomputing it.
- Gaussian, heteroscedastic: outputs ``(mu, rho)`` per target column, scale
  ``s = softplus(rho) + min_scale``. The Fisher of ``N(y; mu, s^2)`` is ``diag(1/s^2, 2/s^2)``
  in ``(mu, s)`` coordinates (``diag(1/s^2, 2)`` in ``(mu, log s)``); with
  ``ds/drho = sigmoid(rho)`` it is ``diag(1/s^2, 2 sigmoid(rho)^2 / s^2)`` in ``(mu, rho)``. The
  Fisher (not the Hessian, which is indefinite in ``rho`` away from the fit) keeps the GGN
  positive semi-definite.
- Categorical over logits ``f``: ``Lambda = diag(p) - p p^T`` with ``p = softmax(f)``, and
  ``L = diag(sqrt p) - p sqrt(p)^T`` (``L L^T = diag(p) - 2 p p^T + p (sum p) p^T``).
- Any other likelihood: the per-example Hessian of ``-log p`` in the outputs (``jax.hessian``),
  its negative eigenvalues clipped to zero.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bdl.likelihoods import Categorical, Gaussian, Likelihood
from bdl.likelihoods._base import LikParams


def has_noise_scale(likelihood: Likelihood) -> bool:
    """True for a homoscedastic Gaussian: its curvature scales with ``1 / sigma^2``."""
    return isinstance(likelihood, Gaussian) and likelihood.noise == "homoscedastic"


def fisher_sqrt(likelihood: Likelihood, f: jax.Array, y: jax.Array, lik_params: LikParams
                ) -> jax.Array:
    """``L`` ``[N, K, R]`` with ``L_n L_n^T`` the output Fisher at outputs ``f`` ``[N, K]``
    (at unit noise for a homoscedastic Gaussian)."""
    n, k = f.shape
    if isinstance(likelihood, Gaussian):
        if likelihood.noise == "homoscedastic":
            return jnp.broadcast_to(jnp.eye(k, dtype=f.dtype), (n, k, k))
        d = k // 2
        rho = f[:, d:]
        s = jax.nn.softplus(rho) + likelihood.min_scale
        diag = jnp.concatenate([1.0 / s, np.sqrt(2.0) * jax.nn.sigmoid(rho) / s], axis=-1)
        return jax.vmap(jnp.diag)(diag)
    if isinstance(likelihood, Categorical):
        p = jax.nn.softmax(f, axis=-1)
        sp = jnp.sqrt(p)
        return jax.vmap(jnp.diag)(sp) - p[:, :, None] * sp[:, None, :]
    return _hessian_sqrt(likelihood, f, y, lik_params)


def _hessian_sqrt(likelihood: Likelihood, f, y, lik_params):
    def nll(fn, yn):
        return -likelihood.log_likelihood(fn[None], yn[None], lik_params)[0]

    h = jax.vmap(jax.hessian(nll))(f, y)
    evals, evecs = jnp.linalg.eigh(0.5 * (h + jnp.swapaxes(h, -1, -2)))
    return evecs * jnp.sqrt(jnp.maximum(evals, 0.0))[:, None, :]


class FitTerms(NamedTuple):
    """The data term of the log-joint at the mode, as a function of the noise.

    Attributes:
      log_lik: ``sum_n w_n log p(y_n | f_n)`` (all but a homoscedastic Gaussian).
      sse: ``sum_n w_n ||y_n - f_n||^2`` (homoscedastic Gaussian; 0 otherwise).
      count: ``sum_n w_n * D``, the number of scalar observations (homoscedastic Gaussian).
    """

    log_lik: jax.Array
    sse: jax.Array
    count: jax.Array


def fit_terms(likelihood: Likelihood, f: jax.Array, y: jax.Array, w: jax.Array,
              lik_params: LikParams) -> FitTerms:
    """``FitTerms`` of outputs ``f`` ``[N, K]``, targets ``y`` and example weights ``w`` ``[N]``."""
    zero = jnp.zeros((), f.dtype)
    if has_noise_scale(likelihood):
        r = y.reshape(f.shape) - f
        return FitTerms(zero, jnp.sum(w[:, None] * r**2), jnp.sum(w) * f.shape[-1])
    ll = likelihood.log_likelihood(f, y, lik_params)
    return FitTerms(jnp.sum(w * ll), zero, zero)


def log_likelihood(terms: FitTerms, log_noise: jax.Array | None) -> jax.Array:
    """The data term at noise scale ``exp(log_noise)`` (ignored when ``None``)."""
    if log_noise is None:
        return terms.log_lik
    return (terms.log_lik - 0.5 * terms.sse * jnp.exp(-2.0 * log_noise)
            - terms.count * (log_noise + 0.5 * np.log(2.0 * np.pi)))
