"""Training: a jitted ``lax.scan`` epoch, chunks of epochs, run by the one host driver.

Everything inside ``run_chunk`` is a pure function of ``(state, data)``, so ``jax.vmap`` over
a leading member/seed axis of the state trains many networks in one compiled program.
``train`` is the optimisation methods' use of ``bdl.training._driver.drive``: it decides when
to stop (budget, convergence, early stopping) and what to record.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from bdl._host import atomic_write
from bdl._warnings import NonFiniteError
from bdl.models import Params
from bdl.training import _convergence
from bdl.training._data import Batch
from bdl.training._driver import drive


class TrainState(NamedTuple):
    """State of one training run (add a leading axis to train several under ``vmap``).

    Attributes:
      params: current parameters ``{"net": ..., "lik": ...}``.
      opt_state: optax state of ``params``.
      key_data: raw PRNG key data (``jax.random.key_data``) for minibatch shuffling.
      epoch: number of epochs done (int32 scalar).
      best_params: parameters with the lowest validation loss so far (== params without
        validation data).
      best_loss: that validation loss (+inf before the first evaluation).
      since_best: chunks since ``best_loss`` last improved.
    """

    params: Params
    opt_state: Any
    key_data: jax.Array
    epoch: jax.Array
    best_params: Params
    best_loss: jax.Array
    since_best: jax.Array


class ChunkLog(NamedTuple):
    """What one chunk of epochs reports: mean training loss per epoch ``[E]``, the
    validation loss at the end of the chunk (nan without validation data) and whether every
    parameter is still finite (bool scalar)."""

    train_loss: jax.Array
    val_loss: jax.Array
    finite: jax.Array


def init_state(key: jax.Array, params: Params, optimizer: optax.GradientTransformation) -> TrainState:
    """Fresh training state for ``params``."""
    return TrainState(
        params=params,
        opt_state=optimizer.init(params),
        key_data=jax.random.key_data(key),
        epoch=jnp.zeros((), jnp.int32),
        best_params=params,
        best_loss=jnp.full((), jnp.inf, jnp.float32),
        since_best=jnp.zeros((), jnp.int32),
    )


def build_epoch(
    loss_fn: Callable[..., Any],
    optimizer: optax.GradientTransformation,
    num_data: int,
    batch_size: int,
    *,
    loss_takes_key: bool = False,
    stateful: bool = False,
) -> Callable[[TrainState, Batch], tuple[TrainState, jax.Array]]:
    """One epoch: shuffle, then ``lax.scan`` an optimiser step over ``num_data // batch_size``
    minibatches (the last partial batch is dropped; ``batch_size >= num_data`` = full batch,
    no shuffling). Returns the new state and the mean training loss of the epoch.

    With ``loss_takes_key=True`` the loss is ``loss_fn(params, batch, key)`` and every step
    gets its own PRNG key (stochastic objectives such as the VI ELBO, dropout). Without it,
    the key stream is exactly as before (deterministic losses give the same results).

    With ``stateful=True`` (a model with BatchNorm statistics) the loss returns
    ``(loss, new_model_state)`` and ``params["state"]`` is replaced by the new model state
    after each step (the loss must not differentiate through ``params["state"]``)."""
    full_batch = batch_size >= num_data
    num_batches = 1 if full_batch else num_data // batch_size
    # the loss reaches transformations that read it (reduce_on_plateau); others ignore it
    update = optax.with_extra_args_support(optimizer).update

    def step(carry, inputs):
        params, opt_state = carry
        batch, step_key = inputs
        args = (params, batch, step_key) if loss_takes_key else (params, batch)
        if stateful:
            (loss, model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(*args)
        else:
            loss, grads = jax.value_and_grad(loss_fn)(*args)
        updates, opt_state = update(grads, opt_state, params, value=loss)
        params = optax.apply_updates(params, updates)
        if stateful:
            params = {**params, "state": model_state}
        return (params, opt_state), loss

    def epoch(state: TrainState, data: Batch) -> tuple[TrainState, jax.Array]:
        key, sub = jax.random.split(jax.random.wrap_key_data(state.key_data))
        step_keys = None
        if loss_takes_key:
            sub, k_steps = jax.random.split(sub)
            step_keys = jax.random.split(k_steps, num_batches)
        if full_batch:
            first = None if step_keys is None else step_keys[0]
            (params, opt_state), losses = step((state.params, state.opt_state), (data, first))
        else:
            # a uniform shuffle as the argsort of 32-bit random keys: one sort, half the
            # cost of jax.random.permutation's two rounds on CPU (a tie between two keys,
            # probability ~N^2 / 2^33, only fixes their relative order)
            perm = jnp.argsort(jax.random.bits(sub, (num_data,)))[: num_batches * batch_size]
            idx = perm.reshape(num_batches, batch_size)

            def minibatch_step(carry, inputs):
                rows, step_key = inputs
                return step(carry, (jax.tree.map(lambda a: a[rows], data), step_key))

            (params, opt_state), losses = jax.lax.scan(
                minibatch_step, (state.params, state.opt_state), (idx, step_keys)
            )
        state = state._replace(
            params=params,
            opt_state=opt_state,
            key_data=jax.random.key_data(key),
            epoch=state.epoch + 1,
        )
        return state, jnp.mean(losses)

    return epoch


def build_chunk(
    epoch_fn: Callable[[TrainState, Batch], tuple[TrainState, jax.Array]],
    val_loss_fn: Callable[[Params, Batch], jax.Array] | None,
) -> Callable[[TrainState, Batch, Batch | None, int], tuple[TrainState, ChunkLog]]:
    """``num_epochs`` epochs as one ``lax.scan``, then a validation check that keeps the best
    parameters. ``num_epochs`` is static (one compilation per distinct value)."""

    def run_chunk(state: TrainState, data: Batch, val_data: Batch | None, num_epochs: int):
        state, losses = jax.lax.scan(lambda s, _: epoch_fn(s, data), state, None, num_epochs)
        finite = jnp.all(jnp.isfinite(losses))
        for leaf in jax.tree.leaves(state.params):
            finite &= jnp.all(jnp.isfinite(leaf))
        if val_loss_fn is None or val_data is None:
            return state._replace(best_params=state.params), ChunkLog(losses, jnp.nan, finite)
        val = val_loss_fn(state.params, val_data)
        better = val < state.best_loss
        state = state._replace(
            best_params=jax.tree.map(
                lambda new, old: jnp.where(better, new, old), state.params, state.best_params
            ),
            best_loss=jnp.where(better, val, state.best_loss),
            since_best=jnp.where(better, 0, state.since_best + 1),
        )
        return state, ChunkLog(losses, val, finite)

    return run_chunk


def train(
    state: TrainState,
    run_chunk: Callable,
    data: Batch,
    val_data: Batch | None,
    *,
    epochs: int | None,
    max_epochs: int | None = None,
    steps_per_epoch: int = 1,
    chunk_epochs: int | None = None,
    patience: int | None = None,
    progress: bool = False,
    checkpoint_dir: str | os.PathLike | None = None,
    description: str = "training",
) -> tuple[TrainState, dict[str, Any]]:
    """Host loop: run jitted chunks of epochs until done, converged or early-stopped.

    ``epochs=None`` trains until the convergence monitor (``bdl.training._convergence``) says
    every particle has converged, for at most ``max_epochs`` (default: ``MAX_STEPS``
    optimiser steps of ``steps_per_epoch`` each); an int runs exactly that many epochs (less
    with early stopping). ``run_chunk`` must be a ``jax.jit`` function with ``num_epochs``
    static (vmapped when ``state`` has a particle axis); each distinct chunk length is
    compiled ahead of time once, and the history reports ``compile_s`` apart from ``run_s``.
    Early stopping (with ``val_data`` and ``patience``): stop once no particle improved its
    validation loss for ``patience`` consecutive chunks. With ``checkpoint_dir`` the state is
    written atomically after each chunk and a later call with the same directory resumes.

    Raises ``bdl.NonFiniteError`` as soon as a chunk ends with a non-finite loss or
    parameter, naming the epoch: NaN parameters are never returned.

    Returns the final state and a history: per-epoch training losses ``train_loss``
    (``[P, E]`` under a particle axis), per-chunk ``val_loss``, ``converged`` (bool per
    particle, ``[P]`` or ``[1]``), ``epochs`` run, ``stopped`` (``"converged"``,
    ``"early_stopping"``, ``"cap"``: the ``epochs=None`` cap ended it, or ``"budget"``: the
    given ``epochs`` ran), ``compile_s`` and ``run_s``.
    """
    until_converged = epochs is None
    if until_converged:
        cap = int(max_epochs) if max_epochs else _convergence.max_epochs_for(steps_per_epoch)
        chunk_epochs = chunk_epochs or _convergence.chunk_epochs_for(steps_per_epoch, cap)
        cap = -(-cap // chunk_epochs) * chunk_epochs  # whole chunks: one compiled length
    else:
        cap = int(epochs)
        chunk_epochs = chunk_epochs or max(1, min(cap, 100))
    ckpt = Path(checkpoint_dir) / "train_state.msgpack" if checkpoint_dir else None
    if ckpt is not None and ckpt.exists():
        state = serialization.from_bytes(state, ckpt.read_bytes())
    done = int(np.max(np.asarray(state.epoch)))
    losses_so_far: list[np.ndarray] = []
    why = {"stopped": "budget" if not until_converged else "cap"}

    def check(state: TrainState, log: ChunkLog, done: int) -> None:
        _check_finite(log, done, description)

    def stop(state: TrainState, log: ChunkLog, done: int) -> bool:
        losses_so_far.append(np.asarray(log.train_loss))
        if patience is not None and val_data is not None:
            if np.all(np.asarray(state.since_best) >= patience):
                why["stopped"] = "early_stopping"
                return True
        if until_converged and np.all(_convergence.converged(
                np.concatenate(losses_so_far, -1), state.opt_state, chunk_epochs)):
            why["stopped"] = "converged"
            return True
        return False

    state, logs, timing = drive(
        state, run_chunk, total=cap, chunk=chunk_epochs, done=done,
        args_for=lambda done, n: (data, val_data), check=check,
        save=None if ckpt is None else lambda s: atomic_write(ckpt, serialization.to_bytes(s)),
        stop=stop,
        progress=progress, description=description, unit="epoch",
    )
    losses = np.concatenate([np.asarray(g.train_loss) for g in logs], axis=-1) if logs \
        else np.zeros((0,))
    history = {
        "train_loss": losses,
        "val_loss": np.stack([np.asarray(g.val_loss) for g in logs], axis=-1) if logs
        else np.zeros((0,)),
        "converged": _convergence.converged(losses, state.opt_state, chunk_epochs)
        if logs else np.ones(1, bool),
        "epochs": int(np.max(np.asarray(state.epoch))),
        "stopped": why["stopped"],
        **timing,
    }
    return state, history


def _check_finite(log: ChunkLog, done: int, description: str) -> None:
    if np.all(np.asarray(log.finite)):
        return
    losses = np.atleast_2d(np.asarray(log.train_loss))
    bad = np.flatnonzero(~np.all(np.isfinite(losses), axis=0))
    where = f"epoch {done + int(bad[0]) + 1}" if bad.size else f"epochs {done + 1}-{done + losses.shape[-1]}"
    raise NonFiniteError(
        f"{description}: the loss or the parameters became NaN/inf at {where}. Lower "
        "`learning_rate` (or pass a gentler `optimizer`), check the data scale, or use float32 "
        "parameters; no parameters are returned."
    )
