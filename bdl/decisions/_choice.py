"""The two kinds of decision, made explicit: ``select`` one of K alternatives along a batch
axis, or ``act`` for every batch element. The array shape never decides between them."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from bdl._validation import as_float, check_finite
from bdl.decisions._utilities import Utility, _check_utility

__all__ = ["select", "act"]


def select(u: Utility, axis: int = -1) -> Utility:
    """Choose ONE of the alternatives lying along batch axis ``axis`` of the predictive.

    Args:
      u: an outcome utility (``threshold``, ``linear``, ``event``, ``custom(fn)``) scoring the
        outcome of one alternative.
      axis: the batch axis of the predictive (and of ``y_true``) holding the K alternatives;
        ``-1`` for a ``[days, routes]`` predictive.

    Returns:
      a selection utility: expected utility ``[..., K]`` (alternatives moved last), choice
      ``[...]`` (an index into the alternatives), e.g. ``choose(pred, select(threshold(30.)))``
      for Tool C's ``[3]`` routes is ``1`` (the highway).
    """
    _check_utility(u)
    if u.actions is not None:
        raise ValueError(f"`u` ({u.name}) is an action utility: it already decides for each "
                         "batch element; `select` takes an outcome utility such as "
                         "threshold(30.0).")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"`axis` must be an int; got {type(axis).__name__}.")
    return dataclasses.replace(u, alternatives=int(axis))


def act(u: Utility, cost=None) -> Utility:
    """Decide for EVERY batch element (each example) whether to act.

    For an outcome utility ``u`` this is the binary action utility over ``[wait, act]``::

        u(wait, y) = 0,    u(act, y) = u(y) - cost,

    whose Bayes action is "act iff E[u(y)] > cost": with ``threshold(t, below=False)``,
    "act iff P(y > t) > cost" (treat the patient, sound the alarm). The closed form of ``u``
    carries over. An action utility (``asymmetric``, ``table``, ``selective``, ``custom`` with
    ``actions``) already decides per element and is returned unchanged (``cost`` must then be
    ``None``).

    Args:
      u: the utility.
      cost: a finite scalar, the cost of acting in the units of ``u`` (default 0).

    Returns:
      an action utility: expected utility ``[*batch, 2]``, choice ``[*batch]`` (1 = act).
    """
    _check_utility(u)
    if u.actions is not None:
        if cost is not None:
            raise ValueError(f"`cost` applies to an outcome utility; `u` ({u.name}) is already an "
                             "action utility with its own costs.")
        return u
    if u.alternatives is not None:
        raise ValueError(f"`u` ({u.name}) is a selection; pass the outcome utility itself to "
                         "`act`.")
    c = as_float(0.0 if cost is None else cost)
    check_finite("cost", c)
    if c.ndim:
        raise ValueError(f"`cost` must be a scalar; got shape {c.shape}.")
    inner, inner_expected = u.fn, u.expected

    def fn(a, y):
        return jnp.where(a == 1, inner(y) - c, jnp.zeros((), c.dtype))

    def expected(pred):
        eu = None if inner_expected is None else inner_expected(pred)
        if eu is None:
            return None
        eu = jnp.broadcast_to(eu, pred.batch_shape)
        return jnp.stack([jnp.zeros_like(eu), eu - c], axis=-1)

    bounds = None
    if u.bounds is not None:
        bounds = (min(0.0, u.bounds[0] - float(c)), max(0.0, u.bounds[1] - float(c)))
    return Utility(fn, jnp.arange(2), expected, bounds, f"act iff E[{u.name}] > {float(c):g}",
                   task=u.task, num_classes=u.num_classes)
