"""The Laplace marginal likelihood and its maximisation over prior precision and noise.

With mode ``theta*`` (D parameters), prior ``N(0, diag(delta)^{-1})`` and posterior precision
``P = s * GGN + diag(delta)`` the Laplace approximation of the evidence is

    log p(D) ~ log p(D | theta*) - 1/2 sum_i delta_i theta*_i^2 + 1/2 sum_i log delta_i
               - 1/2 log det P

(the ``2 pi`` terms of prior and posterior cancel). It is exact for a linear-Gaussian model at
its own mode. The hyper-parameters are tuned by Adam (optax) on their logarithms inside one
``lax.scan``, ``theta*`` held fixed (as laplace-torch does).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

from bdl.approximators.laplace._curvature import Curvature, DiagGGN, KronGGN
from bdl.approximators.laplace._gaussian import (
    Factor,
    factor_log_det,
    layer_groups,
    log_det_precision,
    precision_factor,
    prior_vector,
)
from bdl.approximators.laplace._likelihood import FitTerms, log_likelihood
from bdl.approximators.laplace._subnet import Subnet


class Hyper(NamedTuple):
    """Hyper-parameters on the log scale.

    Attributes:
      log_prior: log prior precision, ``[]`` (one for all) or ``[G]`` (one per layer group).
      log_noise: log noise scale ``[]`` of a homoscedastic Gaussian; None otherwise.
    """

    log_prior: jax.Array
    log_noise: jax.Array | None


def noise_factor(hyper: Hyper) -> jax.Array:
    """``s = 1 / sigma^2`` (1 without a noise scale)."""
    return 1.0 if hyper.log_noise is None else jnp.exp(-2.0 * hyper.log_noise)


def log_marginal_likelihood(sub: Subnet, curv: Curvature, terms: FitTerms, theta: jax.Array,
                            hyper: Hyper) -> jax.Array:
    """The Laplace log evidence (scalar) at ``hyper``; ``theta`` is the flat mode ``[D]``."""
    prior = jnp.exp(hyper.log_prior)
    delta = prior_vector(sub, prior)
    log_det = log_det_precision(sub, curv, prior, noise_factor(hyper))
    return (log_likelihood(terms, hyper.log_noise) - 0.5 * jnp.sum(delta * theta**2)
            + 0.5 * jnp.sum(jnp.log(delta)) - 0.5 * log_det)


def posterior_factor(sub: Subnet, curv: Curvature, terms: FitTerms, theta: jax.Array,
                     hyper: Hyper) -> tuple[Factor, jax.Array]:
    """The precision factor at ``hyper`` and the log evidence there (from the same factor)."""
    prior = jnp.exp(hyper.log_prior)
    factor = precision_factor(sub, curv, prior, noise_factor(hyper))
    delta = prior_vector(sub, prior)
    lml = (log_likelihood(terms, hyper.log_noise) - 0.5 * jnp.sum(delta * theta**2)
           + 0.5 * jnp.sum(jnp.log(delta)) - 0.5 * factor_log_det(factor))
    return factor, lml


class TuneReport(NamedTuple):
    """How the evidence tuning ended (all scalars).

    Attributes:
      gain: the evidence (nats) a Newton step from the end point would still gain,
        ``-1/2 g^T H^{-1} g`` with ``g``, ``H`` the gradient and Hessian of the evidence in the
        tuned log hyper-parameters; ``inf`` where ``H`` is not negative definite and the
        gradient is not small (no maximum nearby).
      grad_norm: ``max |g|`` at the end point.
      finite: whether every tuned hyper-parameter and the evidence are finite.
    """

    gain: jax.Array
    grad_norm: jax.Array
    finite: jax.Array


GAIN_TOL = 1e-2      # nats: a tuning that could still gain more has not converged
GRAD_TOL = 1e-3      # per unit log hyper-parameter: flat enough, whatever the curvature


def tune(sub: Subnet, curv: Curvature, terms: FitTerms, theta: jax.Array, init: Hyper, *,
         tune_noise: bool, steps: int, learning_rate: float
         ) -> tuple[Hyper, jax.Array, TuneReport]:
    """Maximise the log evidence over ``log_prior`` (and ``log_noise`` when ``tune_noise``)
    with ``steps`` Adam steps; returns the tuned ``Hyper``, the evidence per step
    ``[steps]`` and a ``TuneReport`` on convergence. A pure function (jit it).

    The curvature enters only through ``log det P = sum_j log(s e_j + delta_{g(j)})`` over the
    eigenvalues ``e_j`` of the GGN (diagonal: its entries; KFAC: the products of the factors'
    eigenvalues; full with one precision for all: ``eigvalsh``), so each step is one fused
    pass over D numbers. Only a full GGN with per-layer precisions needs a Cholesky per step.
    """
    num_groups = len(sub.group_names)
    index = jnp.asarray(sub.group_index)
    sq = jax.ops.segment_sum(theta**2, index, num_groups)
    counts = jax.ops.segment_sum(jnp.ones_like(theta), index, num_groups)
    spectrum = _spectrum(sub, curv, uniform_prior=jnp.ndim(init.log_prior) == 0 or num_groups == 1)

    def evidence(hyper: Hyper) -> jax.Array:
        log_prior = jnp.broadcast_to(hyper.log_prior, (num_groups,))
        if spectrum is None:
            log_det = log_det_precision(sub, curv, jnp.exp(log_prior), noise_factor(hyper))
        else:
            eigs, groups = spectrum
            log_det = jnp.sum(jnp.log(noise_factor(hyper) * eigs + jnp.exp(log_prior)[groups]))
        return (log_likelihood(terms, hyper.log_noise) - 0.5 * jnp.sum(jnp.exp(log_prior) * sq)
                + 0.5 * jnp.sum(counts * log_prior) - 0.5 * log_det)

    opt = optax.adam(learning_rate)
    params = {"log_prior": init.log_prior}
    if tune_noise:
        params["log_noise"] = init.log_noise

    def objective(p):
        return -evidence(Hyper(p["log_prior"], p.get("log_noise", init.log_noise)))

    def step(carry, _):
        p, state = carry
        value, grads = jax.value_and_grad(objective)(p)
        updates, state = opt.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), -value

    (params, _), history = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return (Hyper(params["log_prior"], params.get("log_noise", init.log_noise)), history,
            _report(objective, params))


def _report(objective, params) -> TuneReport:
    """Newton's estimate of the evidence still to gain from ``params`` (a few numbers)."""
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    fn = lambda v: objective(unravel(v))  # noqa: E731 - the negative evidence
    value, grad = jax.value_and_grad(fn)(flat)
    hess = jax.hessian(fn)(flat)
    hess = 0.5 * (hess + hess.T)
    evals, evecs = jnp.linalg.eigh(hess)  # of the NEGATIVE evidence: a maximum has evals > 0
    proj = evecs.T @ grad
    concave = jnp.all(evals > 0.0)
    gain = jnp.where(concave, 0.5 * jnp.sum(proj**2 / jnp.where(concave, evals, 1.0)), jnp.inf)
    grad_norm = jnp.max(jnp.abs(grad))
    gain = jnp.where(grad_norm <= GRAD_TOL, 0.0, gain)
    finite = jnp.isfinite(value) & jnp.all(jnp.isfinite(flat)) & jnp.all(jnp.isfinite(grad))
    return TuneReport(gain, grad_norm, finite)


def _spectrum(sub: Subnet, curv: Curvature, uniform_prior: bool
              ) -> tuple[jax.Array, jax.Array] | None:
    """GGN eigenvalues ``[D]`` and the prior group of each, or None (full, per-layer prior)."""
    if isinstance(curv, DiagGGN):
        return curv.ggn, jnp.asarray(sub.group_index)
    if isinstance(curv, KronGGN):
        eigs = [jnp.outer(ea, eg).reshape(-1) / curv.num_data
                for ea, eg in zip(curv.eig_a, curv.eig_g, strict=True)]
        groups = np.concatenate([np.full(e.size, g, np.int32)
                                 for e, g in zip(eigs, layer_groups(sub), strict=True)])
        return jnp.concatenate(eigs), jnp.asarray(groups)
    if uniform_prior:
        eigs = jnp.maximum(jnp.linalg.eigvalsh(curv.ggn), 0.0)
        return eigs, jnp.zeros(eigs.shape, jnp.int32)
    return None
