"""Expected utility under a predictive, and the Bayes action that maximises it.

Three ways to the expectation, tried in this order:

1. the utility's closed form for this kind of predictive (threshold -> CDF, linear -> mean,
   newsvendor on a Gaussian mixture, classification table -> ``probs @ table.T``);
2. exact enumeration where the predictive is discrete: a point predictive (the utility at the
   point), raw samples (the average over the draws), a categorical (the sum over classes);
3. Monte Carlo with ``pred.sample(key, num_samples)`` otherwise; ``key`` is then required.

Everything here is plain ``jax.numpy``: the functions trace under ``jit``/``vmap`` with the
utility closed over and ``num_samples`` static, e.g.
``jax.jit(lambda p, k: expected_utility(p, u, key=k))``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from bdl.decisions._utilities import Utility
from bdl.predictive import Categorical, Point, Predictive, Samples

__all__ = ["expected_utility", "choose", "monte_carlo_expected_utility"]

_MAX_ELEMENTS = 2**24  # stacked utilities above this many elements are summed in chunks


def expected_utility(
    pred: Predictive,
    u: Utility,
    *,
    key: jax.Array | None = None,
    num_samples: int = 1000,
) -> jax.Array:
    """Expected utility of every choice.

    Args:
      pred: the predictive. For a selection utility its batch shape is ``[..., K]`` (the last
        axis holds the alternatives); for an action utility it is any ``[*batch]``.
      u: the utility (see :mod:`bdl.decisions`).
      key: PRNG key, needed only when no closed form or exact enumeration exists (a
        Gaussian-mixture predictive with a custom utility, say).
      num_samples: Monte Carlo draws used in that case.

    Returns:
      ``[..., K]`` for a selection utility, ``[*batch, A]`` for an action utility.

    Raises:
      ValueError: ``key`` missing when Monte Carlo is needed; a selection utility on a
        predictive without an alternatives axis.
      TypeError: ``pred`` or ``u`` of the wrong type.
    """
    shape = _check(pred, u)
    eu = u.expected(pred) if u.expected is not None else None
    if eu is None:
        eu = _enumerate(pred, u)
    if eu is None:
        if key is None:
            raise ValueError(
                f"`key` is required: the expected utility of {u.name} under a "
                f"{type(pred).__name__} predictive has no closed form and is estimated by "
                "Monte Carlo (pass key=jax.random.key(...), and optionally num_samples)."
            )
        eu = monte_carlo_expected_utility(key, pred, u, num_samples)
    try:
        return jnp.broadcast_to(eu, shape)
    except ValueError:
        raise ValueError(
            f"The utility {u.name} gives an expected utility of shape {jnp.shape(eu)}; expected "
            f"{shape} for `pred` of batch shape {pred.batch_shape}."
        ) from None


def choose(
    pred: Predictive,
    u: Utility,
    *,
    key: jax.Array | None = None,
    num_samples: int = 1000,
) -> jax.Array:
    """Bayes action: the index maximising the expected utility (argmax over its last axis).

    Returns integer indices of shape ``[...]`` (the batch shape without the alternatives axis
    for a selection utility; ``[*batch]`` for an action utility: ``u.actions[index]`` is the
    action itself). Ties go to the lowest index.
    """
    eu = expected_utility(pred, u, key=key, num_samples=num_samples)
    return jnp.argmax(eu, axis=-1)


def monte_carlo_expected_utility(
    key: jax.Array, pred: Predictive, u: Utility, num_samples: int = 1000
) -> jax.Array:
    """Monte Carlo estimate ``mean_i u(y_i)`` over ``y_i ~ pred`` (standard error shrinks as
    ``num_samples ** -0.5``). Shapes as in :func:`expected_utility`."""
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive int; got {num_samples!r}.")
    return _average_over_draws(u, pred.sample(key, num_samples))


def _average_over_draws(u: Utility, draws: jax.Array) -> jax.Array:
    """``mean_i u(draws[i])`` for draws ``[N, *batch]``: ``[..., K]`` or ``[*batch, A]``.

    When the stacked utilities ``[N, *batch, A]`` would exceed ``_MAX_ELEMENTS``, the draws
    are summed in chunks with ``lax.scan``, so memory stays at a chunk's worth.
    """
    n = draws.shape[0]
    per_draw = math.prod(draws.shape[1:]) * (u.num_actions or 1)
    chunk = max(1, _MAX_ELEMENTS // max(per_draw, 1))
    if n <= chunk:
        return jnp.mean(u(draws), axis=0)
    m = (n // chunk) * chunk
    total = jnp.sum(u(draws[m:]), axis=0)  # the remainder (maybe empty: zeros)

    def add(acc, block):
        return acc + jnp.sum(u(block), axis=0), None

    blocks = draws[:m].reshape(n // chunk, chunk, *draws.shape[1:])
    total, _ = jax.lax.scan(add, total, blocks)
    return total / n


def _enumerate(pred: Predictive, u: Utility) -> jax.Array | None:
    """Exact expected utility for discrete predictives; ``None`` for the others."""
    if isinstance(pred, Point):
        return u(pred.values)
    if isinstance(pred, Samples):
        return _average_over_draws(u, pred.samples)
    if isinstance(pred, Categorical):
        probs = jnp.moveaxis(pred.probs(), -1, 0)  # [C, *batch]
        classes = jnp.arange(pred.num_classes).reshape((-1,) + (1,) * len(pred.batch_shape))
        values = u(jnp.broadcast_to(classes, probs.shape))  # [C, *batch(, A)]
        if not u.is_selection:
            probs = probs[..., None]
        return jnp.sum(probs * values, axis=0)
    return None


def _check(pred, u) -> tuple[int, ...]:
    """Validate the pair and return the shape of the expected utility."""
    if not isinstance(pred, Predictive):
        raise TypeError(f"`pred` must be a bdl.Predictive; got {type(pred).__name__}.")
    if not isinstance(u, Utility):
        raise TypeError(
            f"`u` must be a bdl.decisions.Utility (e.g. bdl.decisions.threshold(30.0)); "
            f"got {type(u).__name__}."
        )
    if u.is_selection:
        if not pred.batch_shape:
            raise ValueError(
                f"`pred` has batch shape (); the selection utility {u.name} needs the "
                "alternatives on the last batch axis, [..., K]."
            )
        return pred.batch_shape
    return (*pred.batch_shape, u.num_actions)
