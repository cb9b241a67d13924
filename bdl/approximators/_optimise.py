"""Train M parameter particles by (penalised) maximum likelihood in one vmapped program.

MAP is M = 1; a deep ensemble is M > 1 with different initialisations (and optionally
bootstrap weights). Both reuse the training core.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

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
    split_validation,
    train,
)


def optimise_particles(
    key: jax.Array,
    network: Network,
    likelihood: Likelihood,
    data: Batch,
    options: TrainOptions,
    init_net: Params,
    *,
    example_weights: Callable[[int], jax.Array] | None = None,
    description: str = "training",
) -> tuple[Params, dict]:
    """Optimise ``init_net`` (a leading particle axis ``[M, ...]``) on ``data``.

    Args:
      key: PRNG key (validation split and minibatch order of every particle).
      init_net: initial network parameters for every particle, leading axis M.
      example_weights: optional per-particle example weights (bootstrap counts): a function
        ``n_train -> [M, n_train]``, called after the validation split.

    Returns:
      ``particles = {"net": [M, ...], "lik": [M, ...]}`` and the training history.
    """
    num_particles = jax.tree.leaves(init_net)[0].shape[0]
    k_val, k_train = jax.random.split(key)
    train_data, val_data = split_validation(data, options.validation_fraction, k_val)
    n = train_data["x"].shape[0]
    data_axes = {"x": None, "y": None, "w": None}
    if example_weights is not None:
        train_data = {**train_data, "w": example_weights(n)}
        data_axes["w"] = 0

    optimizer = options.resolved_optimizer()
    loss = log_joint_loss(network, likelihood, options.prior, n)
    epoch = build_epoch(loss, optimizer, n, options.resolved_batch_size(n))
    chunk = build_chunk(epoch, mean_nll(network, likelihood) if val_data is not None else None)

    lik0 = likelihood.init_params()
    params = {
        "net": init_net,
        "lik": jax.tree.map(lambda a: jnp.broadcast_to(a, (num_particles, *a.shape)), lik0),
    }
    if options.init_params is not None:
        params["net"] = jax.tree.map(
            lambda a: jnp.broadcast_to(a, (num_particles, *jnp.shape(a))), options.init_params
        )
    keys = jax.random.split(k_train, num_particles)
    state = jax.vmap(lambda k, p: init_state(k, p, optimizer))(keys, params)

    def run_chunk(state, data, val, num_epochs):
        per_particle = lambda s, d: chunk(s, d, val, num_epochs)
        return jax.vmap(per_particle, in_axes=(0, data_axes))(state, data)

    state, history = train(
        state,
        jax.jit(run_chunk, static_argnums=3),
        train_data,
        val_data,
        epochs=int(options.epochs),
        chunk_epochs=options.chunk_epochs,
        patience=options.patience,
        progress=options.progress,
        checkpoint_dir=options.checkpoint_dir,
        description=description,
    )
    return state.best_params, history
