"""Train P parameter particles by (penalised) maximum likelihood in one vmapped program.

MAP is one particle per seed; a deep ensemble M particles per seed; a batch of S seeds of
either is S x M particles, trained together (and sharded over devices when a mesh is given).
Every particle sees the same ``x``/``y``; what differs per particle is its initialisation,
its minibatch key and its example weights (a 0/1 validation mask times bootstrap counts), so
the data are never copied per particle.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bdl._cache import memo
from bdl._warnings import NotConvergedWarning
from bdl.approximators._options import TrainOptions
from bdl.likelihoods import Likelihood
from bdl.models import Network, Params
from bdl.training import (
    Batch,
    build_chunk,
    build_epoch,
    init_state,
    log_joint_loss,
    mean_nll,
    train,
)


class ParticleSetup(NamedTuple):
    """Everything that differs between particles, each with a leading particle axis P.

    Attributes:
      init_net: initial network parameters ``[P, ...]``.
      train_keys: minibatch-order keys ``[P]``.
      train_weights: per-example training weights ``[P, N]`` (mask x bootstrap counts).
      val_weights: per-example validation mask ``[P, N]``, or None without validation.
    """

    init_net: Params
    train_keys: jax.Array
    train_weights: jax.Array
    val_weights: jax.Array | None


def seed_setup(
    key: jax.Array,
    network: Network,
    num_data: int,
    options: TrainOptions,
    num_members: int = 1,
    bootstrap: bool = False,
) -> ParticleSetup:
    """The ``num_members`` particles of one seed (vmap this over a batch of seed keys).

    One validation split per seed, shared by its members; bootstrap counts resample the
    training part only.
    """
    k_init, k_train, k_val, k_boot = jax.random.split(key, 4)
    m = num_members
    init = jax.vmap(network.init)(jax.random.split(k_init, m))
    if options.init_params is not None:
        init = jax.tree.map(lambda a: jnp.broadcast_to(a, (m, *jnp.shape(a))),
                            options.init_params)
    n_val = validation_size(num_data, options.validation_fraction)
    val_mask = _held_out(k_val, num_data, n_val)
    train_mask = 1.0 - val_mask
    if bootstrap:
        n_train = num_data - n_val

        def counts(k):
            draws = jax.random.choice(k, num_data, (n_train,), p=train_mask / n_train)
            return jnp.bincount(draws, length=num_data).astype(jnp.float32)

        train_w = jax.vmap(counts)(jax.random.split(k_boot, m))
    else:
        train_w = jnp.broadcast_to(train_mask, (m, num_data))
    val_w = jnp.broadcast_to(val_mask, (m, num_data)) if n_val else None
    return ParticleSetup(init, jax.random.split(k_train, m), train_w, val_w)


def validation_mask(key: jax.Array, num_data: int, fraction: float) -> jax.Array:
    """The 0/1 mask ``[N]`` of the examples a fit with seed ``key`` and
    ``validation_fraction=fraction`` holds out for validation (all zeros for 0)."""
    k_val = jax.random.split(key, 4)[2]  # seed_setup's validation key
    return _held_out(k_val, num_data, validation_size(num_data, fraction))


def _held_out(k_val: jax.Array, num_data: int, n_val: int) -> jax.Array:
    if not n_val:
        return jnp.zeros(num_data)
    return jnp.zeros(num_data).at[jax.random.permutation(k_val, num_data)[:n_val]].set(1.0)


def validation_size(num_data: int, fraction: float) -> int:
    """Number of held-out examples for ``fraction`` (0 when ``fraction`` is 0)."""
    if fraction <= 0.0:
        return 0
    n_val = max(1, int(round(fraction * num_data)))
    if n_val >= num_data:
        raise ValueError(
            f"`validation_fraction`={fraction} leaves no training data ({num_data} examples)."
        )
    return n_val


def batch_setups(keys: jax.Array, network: Network, num_data: int, options: TrainOptions,
                 num_members: int = 1, bootstrap: bool = False) -> ParticleSetup:
    """``seed_setup`` for a batch of seed keys ``[S]``, flattened to ``P = S * M`` particles
    (seed-major: the members of seed s are particles ``s*M .. s*M + M - 1``)."""

    fraction = options.validation_fraction
    starts_given = options.init_params is not None

    def build():
        @jax.jit
        def setup(keys, init_params):
            opts = TrainOptions(validation_fraction=fraction, init_params=init_params)
            per_seed = jax.vmap(
                lambda k: seed_setup(k, network, num_data, opts, num_members, bootstrap)
            )(keys)
            return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), per_seed)

        return setup

    setup = memo(("batch_setups", network.init, num_data, fraction, starts_given, num_members,
                  bootstrap), build)
    return setup(keys, options.init_params)


def optimise_particles(
    network: Network,
    likelihood: Likelihood,
    data: Batch,
    options: TrainOptions,
    setup: ParticleSetup,
    *,
    mesh: Mesh | None = None,
    description: str = "training",
) -> tuple[Params, dict]:
    """Optimise every particle of ``setup`` on ``data`` in one compiled, vmapped program.

    With ``mesh`` (a one-axis ``jax.sharding.Mesh``) the particle axis is sharded over its
    devices and the data replicated; P must be divisible by the number of devices.

    Returns ``particles = {"net": [P, ...], "lik": [P, ...]}`` and the training history.
    """
    n = data["x"].shape[0]
    num_particles = setup.train_keys.shape[0]
    has_val = setup.val_weights is not None
    # only what the training program reads, so a fit from an NNX instance (whose ``init``
    # is a fresh closure) still finds the programs compiled before
    core = Network(None, network.forward, has_state=network.has_state,
                   stochastic=network.stochastic)
    run_chunk, init_states = _program(core, likelihood, options, n, num_particles, has_val)
    lik0 = likelihood.init_params()
    params = {
        "net": setup.init_net,
        "lik": jax.tree.map(lambda a: jnp.broadcast_to(a, (num_particles, *a.shape)), lik0),
    }
    if network.has_state:  # BatchNorm statistics, updated by training-mode passes
        params["state"] = jax.vmap(network.init_state)(setup.train_keys)
    state = init_states(setup.train_keys, params)
    train_data = {"x": data["x"], "y": data["y"], "w": setup.train_weights}
    val_data = {"x": data["x"], "y": data["y"], "w": setup.val_weights} if has_val else None
    if mesh is not None:
        state, train_data, val_data = _shard(mesh, state, train_data, val_data)

    state, history = train(
        state,
        run_chunk,
        train_data,
        val_data,
        epochs=options.epochs,
        max_epochs=options.max_epochs,
        steps_per_epoch=options.steps_per_epoch(n),
        chunk_epochs=options.chunk_epochs,
        patience=options.patience,
        progress=options.progress,
        checkpoint_dir=options.checkpoint_dir,
        description=description,
    )
    warn_if_not_converged(history, options, description)
    return state.best_params, history


def _program(network: Network, likelihood: Likelihood, options: TrainOptions, n: int,
             num_particles: int, has_val: bool):
    """The jitted chunk ``(state, data, val, num_epochs) -> (state, log)`` and the jitted
    state initialiser for these settings, memoised (``bdl._cache``) so that an identical fit
    reuses the programs compiled for the first one."""
    n_train = n - validation_size(n, options.validation_fraction)
    batch_size = options.resolved_batch_size(n)
    optimizer_key = (options.optimizer if options.optimizer is not None
                     else ("adam+plateau", options.learning_rate))
    key = ("optimise_particles", network, likelihood, options.prior, optimizer_key, n, n_train,
           batch_size, num_particles, has_val)
    return memo(key, lambda: _build_program(network, likelihood, options, n, n_train,
                                            num_particles, has_val))


def _build_program(network, likelihood, options, n, n_train, num_particles, has_val):
    optimizer = options.resolved_optimizer(n)
    loss = log_joint_loss(network, likelihood, options.prior, n, num_effective=n_train)
    epoch = build_epoch(loss, optimizer, n, options.resolved_batch_size(n),
                        loss_takes_key=network.has_state or network.stochastic,
                        stateful=network.has_state)
    chunk = build_chunk(epoch, mean_nll(network, likelihood) if has_val else None)
    axes = {"x": None, "y": None, "w": 0}

    def run_chunk(state, data, val, num_epochs):
        per_particle = lambda s, d, v: chunk(s, d, v, num_epochs)
        if num_particles == 1:  # plain matmuls run faster on CPU than batched ones of size 1
            squeeze = lambda t: jax.tree.map(lambda a: a[0], t)
            pick = lambda d: None if d is None else {**d, "w": d["w"][0]}
            out = per_particle(squeeze(state), pick(data), pick(val))
            return jax.tree.map(lambda a: jnp.asarray(a)[None], out)
        return jax.vmap(per_particle, in_axes=(0, axes, axes if has_val else None))(
            state, data, val
        )

    init_states = jax.jit(jax.vmap(lambda k, p: init_state(k, p, optimizer)))
    return jax.jit(run_chunk, static_argnums=3), init_states


def warn_if_not_converged(history: dict, options: TrainOptions, description: str) -> None:
    """``bdl.NotConvergedWarning`` when an ``epochs=None`` run stopped at its cap."""
    if history.get("stopped") == "cap" and not np.all(history["converged"]):
        warnings.warn(
            f"{description}: the training loss was still improving when the cap of "
            f"{history['epochs']} epochs ended the run; raise `max_epochs` (or "
            "`learning_rate`), or pass `epochs` to fix the budget. If the model is fitting "
            "the noise (a learned noise scale still shrinking), hold data out instead "
            "(`validation_fraction` with `patience`) or use a stronger `prior`.",
            NotConvergedWarning, stacklevel=4,
        )


def _shard(mesh: Mesh, state, train_data, val_data):
    """Particle axis over the mesh's (single) axis; x and y replicated."""
    (axis,) = mesh.axis_names
    devices = mesh.devices.size
    leading = jax.tree.leaves(state)[0].shape[0]
    if leading % devices:
        raise ValueError(
            f"{leading} particles cannot be split evenly over {devices} devices; use a "
            f"number of seeds x members divisible by {devices}."
        )
    split = NamedSharding(mesh, PartitionSpec(axis))
    whole = NamedSharding(mesh, PartitionSpec())
    state = jax.device_put(state, split)

    def place(batch):
        if batch is None:
            return None
        return {"x": jax.device_put(batch["x"], whole), "y": jax.device_put(batch["y"], whole),
                "w": jax.device_put(batch["w"], split)}

    return state, place(train_data), place(val_data)
