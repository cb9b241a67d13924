"""Tail (Polyak-Ruppert) averaging of an optimiser's iterates, as an optax transformation.

Used by VI to remove the Monte Carlo jitter of the ELBO's gradient: the iterates of a
constant-step optimiser fluctuate around the optimum, and their mean converges to it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bdl.models import Params

__all__ = ["TailAverageState", "tail_average", "tail_average_params"]


class TailAverageState(NamedTuple):
    """State of ``tail_average``.

    Attributes:
      inner_state: the wrapped optimiser's state.
      step: optimiser steps taken (int32 scalar).
      tail_first: running mean of the iterates of the first half of the current averaging
        window (zeros before the first window starts).
      tail_second: the same for its second half.
    """

    inner_state: Any
    step: jax.Array
    tail_first: Params
    tail_second: Params


def tail_average(
    inner: optax.GradientTransformation, windows: tuple[tuple[int, int, int], ...]
) -> optax.GradientTransformationExtraArgs:
    """Polyak-Ruppert (tail) averaging of the iterates of ``inner`` over step windows.

    The updates are those of ``inner``. ``windows`` are increasing, disjoint
    ``(start, mid, end)`` step ranges (0-based, end excluded); in each, the state keeps the
    running means of the iterates of steps ``start..mid-1`` and ``mid..end-1`` (restarted
    when a window begins: step ``t`` gives the iterate after ``t + 1`` updates), read with
    ``tail_average_params`` at the end of a window. Averaging removes most of the Monte
    Carlo jitter of a stochastic objective such as the ELBO (the iterates of a constant-step
    optimiser fluctuate around the optimum; their mean converges to it); the two halves let
    a caller check that the iterates stopped drifting.
    """
    inner = optax.with_extra_args_support(inner)
    table = np.asarray(windows, np.int32).reshape(-1, 3)
    starts, mids, ends = table.T
    if (not len(table) or np.any(starts >= ends) or np.any(mids < starts) or np.any(mids > ends)
            or np.any(starts[1:] < ends[:-1])):
        raise ValueError(f"windows must be increasing, disjoint, non-empty (start, mid, end) "
                         f"step ranges; got {windows}.")

    def init(params):
        zeros = optax.tree_utils.tree_zeros_like(params)
        return TailAverageState(inner.init(params), jnp.zeros((), jnp.int32), zeros, zeros)

    def update(updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError("tail_average needs `params` in update().")
        updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
        new = optax.apply_updates(params, updates)
        t = state.step
        k = jnp.clip(jnp.searchsorted(ends, t, side="right"), 0, len(ends) - 1)
        lo, mid, hi = jnp.asarray(starts)[k], jnp.asarray(mids)[k], jnp.asarray(ends)[k]

        def running_mean(avg, a, b):
            inside = (t >= a) & (t < b)
            count = jnp.maximum(t - a + 1, 1)
            return jax.tree.map(
                lambda m, p: jnp.where(inside, m + (p - m) / count.astype(m.dtype), m), avg, new
            )

        state = TailAverageState(inner_state, t + 1, running_mean(state.tail_first, lo, mid),
                                 running_mean(state.tail_second, mid, hi))
        return updates, state

    return optax.GradientTransformationExtraArgs(init, update)


def tail_average_params(opt_state: Any) -> tuple[Params, Params, jax.Array]:
    """``(first, second, step)`` of the ``TailAverageState`` nested anywhere in
    ``opt_state`` (e.g. inside ``optax.multi_transform``)."""
    state = optax.tree_utils.tree_get(opt_state, "TailAverageState")
    if state is None:
        raise ValueError("No tail_average state in this optimiser state.")
    return state.tail_first, state.tail_second, state.step
