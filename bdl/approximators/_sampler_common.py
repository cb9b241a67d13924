"""What every sampler shares: options, the log-density over ``{"net", "lik"}``, starting points.

The target of every sampler is the (tempered) posterior over the whole parameter tree
``params = {"net": network params, "lik": likelihood params}``:

    log p(params | D) = sum_i w_i log p(y_i | x_i, params) + log p(net)   (+ const)

with the prior on the network from ``prior`` and a flat prior on the likelihood parameters
(the log noise scale of a learned Gaussian), as in MAP training. On a minibatch of B of the N
examples the sum is scaled by N / B (an unbiased estimate). ``temperature`` T targets
p(params | D)^(1/T): T < 1 is a cold posterior.

Every program here is memoised (``bdl._cache``) on hashable configuration, and takes the
arrays (keys, starting points, data) as arguments, so a repeated identical fit compiles
nothing.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from bdl._cache import memo
from bdl._validation import check_positive
from bdl.likelihoods import Likelihood
from bdl.models import Network, Params
from bdl.priors import IsotropicGaussian, Prior
from bdl.training import Batch, log_joint_loss


@dataclasses.dataclass(frozen=True)
class SamplerOptions:
    """How the chains of every sampler run: composed into each sampler's options as the
    field ``sampler`` (its fields are ``bdl.fit`` keywords too). How many draws a chain keeps
    (``num_samples``, ``thinning``, burn-in / warm-up) is each method's own option, with
    its own defaults.

    Attributes:
      num_chains: chains run side by side (vmapped: one compiled program).
      temperature: sample p(params | data)^(1/temperature) (< 1: cold posterior).
      prior: prior over network parameters (default ``IsotropicGaussian(1.0)``).
      init: where the chains start when neither ``init_params`` nor ``init_positions`` is
        given: ``"random"`` (each chain from its own random initialisation) or ``"map"``
        (each chain from its own MAP fit: a random initialisation optimised until converged,
        all chains in one vmapped program, so that a chain on a network starts in a mode
        instead of spending its budget finding one). None: the method's default, ``"map"``
        for the SG-MCMC methods, ``"random"`` for HMC / NUTS (their warm-up finds the mode).
      init_params: network parameters every chain starts from.
      init_positions: full starting points ``{"net": [C, ...], "lik": [C, ...]}``, one per
        chain (overrides ``init_params``).
      chunk_steps: steps per jitted chunk (progress / checkpoint granularity).
      progress: show a progress bar.
      checkpoint_dir: write the sampler state there after every chunk; a later call with the
        same directory and settings resumes (same result as an uninterrupted run).
      callback: called on the host after every chunk with ``{"step", "total_steps", "phase"}``.
    """

    num_chains: int = 4
    temperature: float = 1.0
    prior: Prior = dataclasses.field(default_factory=IsotropicGaussian)
    init: str | None = None
    init_params: Any = None
    init_positions: Any = None
    chunk_steps: int | None = None
    progress: bool = False
    checkpoint_dir: str | os.PathLike | None = None
    callback: Callable[[dict], None] | None = None

    composable: ClassVar[bool] = True  # bdl.fit routes flat keywords into it

    def __post_init__(self):
        if int(self.num_chains) < 1:
            raise ValueError(f"`num_chains` must be >= 1; got {self.num_chains}.")
        if self.chunk_steps is not None and int(self.chunk_steps) < 1:
            raise ValueError(f"`chunk_steps` must be >= 1; got {self.chunk_steps}.")
        check_positive("temperature", self.temperature)
        if self.init not in (None, "random", "map"):
            raise ValueError(f"`init` must be 'random' or 'map'; got {self.init!r}.")


def check_draws(num_samples: int, thinning: int, num_burnin: int = 0) -> None:
    """Raise ``ValueError`` unless ``num_samples, thinning >= 1`` and ``num_burnin >= 0``."""
    for name, value in (("num_samples", num_samples), ("thinning", thinning)):
        if int(value) < 1:
            raise ValueError(f"`{name}` must be >= 1; got {value}.")
    if int(num_burnin) < 0:
        raise ValueError(f"`num_burnin` must be >= 0; got {num_burnin}.")


_RUN_ONLY = frozenset({"chunk_steps", "progress", "checkpoint_dir", "callback"})


def run_fields(options: Any) -> dict[str, Any]:
    """The options that determine the result, flattened over composed options (for checkpoint
    fingerprints): everything but chunking, progress, checkpoint directory and callback."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if dataclasses.is_dataclass(value) and getattr(type(value), "composable", False):
            out.update(run_fields(value))
        elif f.name not in _RUN_ONLY:
            out[f.name] = value
    return out


def core_network(network: Network) -> Network:
    """Only what a sampler's programs read of ``network`` (its ``forward``), so that a fit
    from an NNX instance (whose ``init`` is a fresh closure) finds the programs compiled
    before."""
    return Network(None, network.forward, has_state=network.has_state,
                   stochastic=network.stochastic)


def log_density_fn(network: Network, likelihood: Likelihood, prior: Prior, num_data: int
                   ) -> Callable[[Params, Batch], jax.Array]:
    """``(params, batch) -> scalar``: the log posterior density (up to a constant), estimated
    on ``batch`` (B of the ``num_data`` examples) as ``(N / B) * sum_i w_i log p(y_i | x_i,
    params) + log p(net)``; exact when ``batch`` is the whole data set. This is
    ``-num_data * log_joint_loss``, the objective MAP training minimises. The same function
    object comes back for the same model, likelihood, prior and ``num_data`` (``bdl._cache``),
    so the programs built from it are shared."""
    core = core_network(network)

    def build():
        loss = log_joint_loss(core, likelihood, prior, num_data)
        return lambda params, batch: -num_data * loss(params, batch)

    return memo(("sampler_log_density", core, likelihood, prior, int(num_data)), build)


def initial_positions(key: jax.Array, network: Network, likelihood: Likelihood,
                      options: SamplerOptions, data: Batch | None = None, *,
                      default_init: str = "random") -> Params:
    """Starting points ``{"net": [C, ...], "lik": [C, ...]}`` of the C chains (one compiled
    program per model, likelihood and number of chains; ``init_params`` is its argument;
    ``init="map"`` needs ``data``; ``default_init`` is the method's choice for ``init=None``)."""
    c = int(options.num_chains)
    init = options.init or default_init
    if init == "map" and options.init_positions is None and options.init_params is None:
        return _map_starts(key, network, likelihood, options, data)
    if options.init_positions is not None:
        pos = jax.tree.map(jnp.asarray, options.init_positions)
        if not isinstance(pos, dict) or set(pos) != {"net", "lik"}:
            raise ValueError('`init_positions` must be a dict {"net": ..., "lik": ...} with a '
                             "leading chain axis on every leaf.")
        template = {"net": jax.eval_shape(network.init, key), "lik": likelihood.init_params()}
        if jax.tree.structure(pos) != jax.tree.structure(template):
            raise ValueError("`init_positions` must have the structure of the model's parameters "
                             f"{jax.tree.structure(template)}; got {jax.tree.structure(pos)}.")
        for a, t in zip(jax.tree.leaves(pos), jax.tree.leaves(template), strict=True):
            if a.shape != (c, *jnp.shape(t)):
                raise ValueError(f"`init_positions` leaf of shape {a.shape} must be "
                                 f"[num_chains={c}, *{tuple(jnp.shape(t))}].")
        return jax.tree.map(lambda a, t: a.astype(t.dtype), pos, template)
    program = memo(("sampler_init", network.init, likelihood, c),
                   lambda: jax.jit(partial(_initial_positions, network.init, likelihood, c)))
    return program(key, options.init_params)


def _map_starts(key: jax.Array, network: Network, likelihood: Likelihood,
                options: SamplerOptions, data: Batch) -> Params:
    """One MAP fit per chain (default training options, the sampler's prior), vmapped."""
    from bdl.approximators._optimise import batch_setups, optimise_particles
    from bdl.approximators._options import TrainOptions

    train = TrainOptions(prior=options.prior)
    keys = jax.random.split(key, int(options.num_chains))
    setup = batch_setups(keys, network, int(data["x"].shape[0]), train)
    particles, _ = optimise_particles(network, likelihood, data, train, setup,
                                      description="chain starts (MAP per chain)")
    return {"net": particles["net"], "lik": particles["lik"]}


def _initial_positions(init: Callable, likelihood: Likelihood, c: int, key: jax.Array,
                       init_params: Params | None) -> Params:
    if init_params is not None:
        template = jax.eval_shape(init, key)
        net = jax.tree.map(lambda a, t: jnp.broadcast_to(jnp.asarray(a, t.dtype),
                                                         (c, *jnp.shape(a))),
                           init_params, template)
    else:
        net = jax.vmap(init)(jax.random.split(key, c))
    lik = jax.tree.map(lambda a: jnp.broadcast_to(a, (c, *jnp.shape(a))),
                       likelihood.init_params())
    return {"net": net, "lik": lik}


def tree_spec(tree: Any) -> tuple:
    """A hashable description of ``tree``'s structure, shapes and dtypes (a memo key)."""
    return (jax.tree.structure(tree),
            tuple((tuple(jnp.shape(a)), jnp.result_type(a)) for a in jax.tree.leaves(tree)))


CURVATURE_EXAMPLES = 2048  # the curvature estimate uses at most this many examples
CURVATURE_ITERATIONS = 20


def max_curvature(log_density: Callable[[Params, Batch], jax.Array], positions: Params,
                  data: Batch, *, iterations: int = CURVATURE_ITERATIONS) -> jax.Array:
    """The largest curvature (Hessian eigenvalue in magnitude) of the negative log posterior,
    by power iteration on Hessian-vector products at each chain's position (leaves ``[C,
    ...]``); the largest over the chains (a scalar). The data term is estimated on at most
    ``CURVATURE_EXAMPLES`` evenly spaced examples (``log_density`` scales it to the whole set).
    One compiled program per ``log_density`` (memoised: pass the one ``log_density_fn``
    returns), shapes and ``iterations``.

    Gradient steps on the log posterior are stable below ``2 / curvature`` (Langevin) and
    ``2 / sqrt(curvature)`` (momentum methods): the SG-MCMC default step sizes are fixed
    fractions of these, so they follow the data size and the scale of the problem.
    """
    program = memo(("sampler_curvature", log_density, int(iterations)),
                   lambda: jax.jit(partial(_max_curvature, log_density, int(iterations))))
    return program(positions, data)


def _max_curvature(log_density, iterations, positions, data):
    n = int(data["x"].shape[0])
    if n > CURVATURE_EXAMPLES:
        idx = np.linspace(0, n - 1, CURVATURE_EXAMPLES).astype(np.int32)
        data = jax.tree.map(lambda a: a[idx], data)
    one = jax.tree.map(lambda a: a[0], positions)
    _, unravel = ravel_pytree(one)

    def largest(position: Params, key: jax.Array) -> jax.Array:
        flat = ravel_pytree(position)[0]
        grad = jax.grad(lambda f: -log_density(unravel(f), data))
        hvp = lambda v: jax.jvp(grad, (flat,), (v,))[1]

        def step(_, v):
            hv = hvp(v)
            return hv / jnp.maximum(jnp.linalg.norm(hv), jnp.finfo(hv.dtype).tiny)

        v0 = jax.random.normal(key, flat.shape, flat.dtype)
        v = jax.lax.fori_loop(0, iterations, step, v0 / jnp.linalg.norm(v0))
        return jnp.abs(jnp.vdot(v, hvp(v)))

    c = jax.tree.leaves(positions)[0].shape[0]
    keys = jax.random.split(jax.random.key(0), c)
    return jnp.max(jax.vmap(largest)(positions, keys))
