"""Posterior over a set of parameter particles (MAP: one; ensembles, MCMC: many)."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from bdl.approximators._method import Posterior, register_posterior
from bdl.approximators._state import as_state_dict, restore
from bdl.likelihoods import Likelihood
from bdl.models import Network, Params
from bdl.predictive import Predictive
from bdl.training import check_inputs

DEFAULT_PREDICT_CHUNK = 4096


@dataclasses.dataclass(frozen=True)
class ParticlePosterior(Posterior):
    """An equally weighted set of M parameter particles.

    Attributes:
      method: name of the method that produced it (``"map"``, ``"ensemble"``, ...).
      network: the model's pure functions.
      likelihood: the likelihood the particles were fitted with.
      particles: ``{"net": ..., "lik": ...}`` with a leading particle axis ``[M, ...]``.
      info: method-specific extras (training history, options), plain Python/numpy.
      input_shape: shape of one input example (to rebuild the network when loading).
    """

    method: str
    network: Network
    likelihood: Likelihood
    particles: Params
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    input_shape: tuple[int, ...] = ()

    kind: ClassVar[str] = "particles"

    @property
    def num_particles(self) -> int:
        return int(jax.tree.leaves(self.particles)[0].shape[0])

    def outputs(self, x, *, chunk_size: int = DEFAULT_PREDICT_CHUNK) -> jax.Array:
        """Network outputs of every particle ``[M, N, out]`` for inputs ``x`` ``[N, ...]``.

        Inputs are processed in chunks of ``chunk_size`` with ``lax.map`` (vmapped over the
        particles inside a chunk), so large inputs never materialise all activations at once.
        """
        x = check_inputs(x, "x")
        return _particle_outputs(self.network.apply, self.particles["net"],
                                 self.particles.get("state"), x, chunk_size)

    def predict(self, x, *, key: jax.Array | None = None, num_samples: int | None = None,
                chunk_size: int = DEFAULT_PREDICT_CHUNK) -> Predictive:
        """Predictive for inputs ``x`` ``[N, ...]``: the mixture over all particles (exact;
        ``key`` and ``num_samples`` are accepted for a uniform API and ignored).

        Batch shape ``[N]`` (``[N, D]`` for D-column regression targets).
        """
        del key, num_samples
        f = self.outputs(x, chunk_size=chunk_size)
        return self.likelihood.predictive(f, self.particles["lik"])

    def sample_params(self, key: jax.Array, num_samples: int) -> Params:
        """``num_samples`` particles drawn uniformly with replacement, ``[S, ...]``."""
        idx = jax.random.randint(key, (int(num_samples),), 0, self.num_particles)
        return jax.tree.map(lambda a: a[idx], self.particles)

    def to_state(self) -> dict[str, Any]:
        return {"particles": as_state_dict(self.particles)}

    @classmethod
    def from_state(cls, state, *, method, network, likelihood, info, input_shape):
        particles = state["particles"]
        leaves = jax.tree.leaves(particles)
        if not leaves:
            raise ValueError("the saved posterior holds no particle arrays.")
        leading = int(np.shape(leaves[0])[0])
        key = jax.random.key(0)
        template = {"net": network.init(key), "lik": likelihood.init_params()}
        if network.has_state:
            template["state"] = network.init_state(key)
        template = jax.tree.map(lambda a: jnp.zeros((leading, *jnp.shape(a)), jnp.asarray(a).dtype),
                                template)
        return cls(method, network, likelihood, restore("`path`", template, particles,
                                                       "particles"), info, input_shape)

    def member(self, i: int) -> ParticlePosterior:
        """The posterior made of particle ``i`` alone."""
        take = jax.tree.map(lambda a: a[i : i + 1], self.particles)
        return dataclasses.replace(self, particles=take)


register_posterior(ParticlePosterior, ("particles",))


@partial(jax.jit, static_argnames=("apply", "chunk_size"))
def _particle_outputs(apply, net_particles, state_particles, x, chunk_size):
    def run(params, xc):
        if state_particles is None:
            return jax.vmap(apply, in_axes=(0, None))(params, xc)
        return jax.vmap(apply, in_axes=(0, None, 0))(params, xc, state_particles)

    n = x.shape[0]
    if n <= chunk_size:
        return run(net_particles, x)
    num_chunks = -(-n // chunk_size)
    pad = num_chunks * chunk_size - n
    xs = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) if pad else x
    xs = xs.reshape(num_chunks, chunk_size, *x.shape[1:])
    out = jax.lax.map(lambda xc: run(net_particles, xc), xs)  # [C, M, chunk, out]
    out = jnp.moveaxis(out, 0, 1).reshape(out.shape[1], num_chunks * chunk_size, -1)
    return out[:, :n]


def split_seeds(
    method: str,
    network: Network,
    likelihood: Likelihood,
    particles: Params,
    history: dict,
    num_seeds: int,
    input_shape: tuple[int, ...],
    info: dict[str, Any],
) -> list[ParticlePosterior]:
    """Cut seed-major particles ``[S * M, ...]`` (and their history) into S posteriors."""
    per_seed = jax.tree.map(lambda a: a.reshape(num_seeds, -1, *a.shape[1:]), particles)
    device = jax.devices()[0]  # a seed's particles live on one device, not replicated
    posteriors = []
    for s in range(num_seeds):
        hist = {k: (v.reshape(num_seeds, -1, *v.shape[1:])[s] if np.ndim(v) else v)
                for k, v in history.items()}
        posteriors.append(ParticlePosterior(
            method, network, likelihood, jax.tree.map(lambda a, s=s: jax.device_put(a[s], device), per_seed),
            {**info, "history": hist, "converged": bool(np.all(hist["converged"]))}, input_shape,
        ))
    return posteriors
