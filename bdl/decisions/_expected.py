"""Expected utility under a predictive, and the Bayes action that maximises it.

Three ways to the expectation, tried in this order:

1. the utility's closed form for this kind of predictive (threshold -> CDF, linear -> mean,
   newsvendor on a Gaussian mixture, classification table -> ``probs @ table.T``);
2. exact enumeration where the predictive is discrete: a point predictive (the utility at the
   point), raw samples (the average over the draws), a categorical (the sum over classes);
3. Monte Carlo with ``pred.sample(key, num_samples)`` otherwise; ``key`` is then required.

Everything here is plain ``jax.numpy``: the functions trace under ``jit``/``vmap`` with the
utility closed over and ``num_samples`` static, e.g.
``jax.jit(lambda p, k: expected_utility(p, select(threshold(30.0)), key=k))``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from bdl.decisions._utilities import Utility, _check_utility, elementwise
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
      pred: the predictive, batch shape ``[*batch]``.
      u: the utility (see :mod:`bdl.decisions`): an action utility (one decision per batch
        element), a selection ``select(u, axis)`` (one of the K alternatives along ``axis``),
        or a bare outcome utility (its expectation per batch element, no choice implied).
      key: PRNG key, needed only when no closed form or exact enumeration exists (a
        Gaussian-mixture predictive with a custom utility, say).
      num_samples: Monte Carlo draws used in that case.

    Returns:
      ``[*batch, A]`` for an action utility; ``[..., K]`` for a selection (the batch with the
      alternatives axis moved last); ``[*batch]`` for an outcome utility.

    Raises:
      ValueError: ``key`` missing when Monte Carlo is needed; ``u`` does not fit ``pred``
        (regression vs classification, number of classes, no alternatives axis).
      TypeError: ``pred`` or ``u`` of the wrong type.
    """
    u = check_fit(pred, u)
    return _expected(pred, u, key, num_samples)


def choose(
    pred: Predictive,
    u: Utility,
    *,
    key: jax.Array | None = None,
    num_samples: int = 1000,
) -> jax.Array:
    """Bayes action: the index maximising the expected utility. Ties go to the lowest index.

    Returns integer indices: ``[*batch]`` for an action utility (``u.actions[index]`` is the
    action itself, e.g. 1 = act for :func:`act`); ``[...]``, the batch without the
    alternatives axis, for ``select(u, axis)`` (the index of the chosen alternative). A bare
    outcome utility raises: it does not say what is chosen.
    """
    u = check_fit(pred, u, decide=True)
    return jnp.argmax(_expected(pred, u, key, num_samples), axis=-1)


def monte_carlo_expected_utility(
    key: jax.Array, pred: Predictive, u: Utility, num_samples: int = 1000
) -> jax.Array:
    """Monte Carlo estimate ``mean_i u(y_i)`` over ``y_i ~ pred`` (standard error shrinks as
    ``num_samples ** -0.5``). Shapes as in :func:`expected_utility`."""
    u = check_fit(pred, u)
    eu = _sum_over_draws(_mean_fn(u), _draws(pred, key, num_samples), u.num_actions or 1)
    return _choices_last(u, eu)


def _expected(pred: Predictive, u: Utility, key, num_samples) -> jax.Array:
    """Expected utility for a checked pair; shapes as in :func:`expected_utility`."""
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
        eu = _sum_over_draws(_mean_fn(u), _draws(pred, key, num_samples), u.num_actions or 1)
    shape = (*pred.batch_shape, u.num_actions) if u.actions is not None else pred.batch_shape
    try:
        eu = jnp.broadcast_to(eu, shape)
    except ValueError:
        raise ValueError(
            f"The utility {u.name} gives an expected utility of shape {jnp.shape(eu)}; expected "
            f"{shape} for `pred` of batch shape {pred.batch_shape}."
        ) from None
    return _choices_last(u, eu)


def _choices_last(u: Utility, x: jax.Array) -> jax.Array:
    return x if u.alternatives is None else jnp.moveaxis(x, u.alternatives, -1)


def _draws(pred: Predictive, key, num_samples) -> jax.Array:
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive int; got {num_samples!r}.")
    return pred.sample(key, int(num_samples))


def _mean_fn(u: Utility) -> Callable[[jax.Array], jax.Array]:
    return lambda block: jnp.sum(elementwise(u, block), axis=0)


def _sum_over_draws(f: Callable, draws: jax.Array, width: int = 1):
    """``sum over blocks of f(block) / N`` for draws ``[N, *batch]``, where ``f(block)`` returns a
    pytree of sums over the block's leading axis; ``width`` is the number of utilities per draw
    and batch element (the action count ``A``, else 1).

    When the stacked utilities ``[N, *batch, width]`` would exceed ``_MAX_ELEMENTS``, the draws
    are summed in chunks with ``lax.scan``, so memory stays at a chunk's worth.
    """
    n = draws.shape[0]
    per_draw = math.prod(draws.shape[1:]) * width
    chunk = max(1, _MAX_ELEMENTS // max(per_draw, 1))
    if n <= chunk:
        return jax.tree.map(lambda t: t / n, f(draws))
    m = (n // chunk) * chunk
    total = f(draws[m:])  # the remainder (maybe empty: zeros)

    def add(acc, block):
        return jax.tree.map(jnp.add, acc, f(block)), None

    blocks = draws[:m].reshape(n // chunk, chunk, *draws.shape[1:])
    total, _ = jax.lax.scan(add, total, blocks)
    return jax.tree.map(lambda t: t / n, total)


def _enumerate(pred: Predictive, u: Utility) -> jax.Array | None:
    """Exact expected utility for discrete predictives; ``None`` for the others."""
    if isinstance(pred, Point):
        return elementwise(u, pred.values)
    if isinstance(pred, Samples):
        return _sum_over_draws(_mean_fn(u), pred.samples, u.num_actions or 1)
    if isinstance(pred, Categorical):
        probs, values = _class_values(pred, u)
        return jnp.sum(probs * values, axis=0)
    return None


def _class_values(pred: Categorical, u: Utility) -> tuple[jax.Array, jax.Array]:
    """Probabilities ``[C, *batch(, 1)]`` and utilities ``[C, *batch(, A)]`` of every class."""
    probs = jnp.moveaxis(pred.probs(), -1, 0)  # [C, *batch]
    classes = jnp.arange(pred.num_classes).reshape((-1,) + (1,) * len(pred.batch_shape))
    values = elementwise(u, jnp.broadcast_to(classes, probs.shape))  # [C, *batch(, A)]
    if u.actions is not None:
        probs = probs[..., None]
    return probs, values


def check_fit(pred, u, *, decide: bool = False) -> Utility:
    """Validate the pair; return ``u`` with its alternatives axis made negative (so it counts
    from the end, past any leading sample axis).

    ``decide=True``: ``u`` must say what is chosen (an action utility or a selection).
    """
    if not isinstance(pred, Predictive):
        raise TypeError(f"`pred` must be a bdl.Predictive; got {type(pred).__name__}.")
    _check_utility(u)
    if u.task is not None and (u.task == "classification") != pred.is_classification:
        have = "a classification" if pred.is_classification else "a regression"
        fits = ("class labels" if u.task == "classification" else "a real-valued outcome")
        raise ValueError(
            f"`u` ({u.name}) is a utility of {fits}, but `pred` is {have} predictive "
            f"({type(pred).__name__}, batch shape {pred.batch_shape}). "
            + ("Use table, selective or event for class labels."
               if pred.is_classification else
               "Use threshold, linear, asymmetric or act(...) for a real-valued outcome.")
        )
    if u.num_classes is not None and pred.probs().shape[-1] != u.num_classes:
        raise ValueError(
            f"`pred` has {pred.probs().shape[-1]} classes but `u` ({u.name}) is written for "
            f"{u.num_classes} (its table has {u.num_classes} columns)."
        )
    if decide and u.kind == "outcome":
        raise ValueError(
            f"`u` ({u.name}) scores one outcome but does not say what is chosen, and the "
            f"shape of `pred` ({pred.batch_shape}) cannot tell. Say which decision you mean: "
            "bdl.decisions.select(u, axis=-1) picks ONE of the alternatives along that batch "
            "axis (routes of a [days, routes] predictive); bdl.decisions.act(u, cost=c) decides "
            "for EVERY batch element (each test point) whether to act: act iff E[u(y)] > c."
        )
    if u.alternatives is not None:
        n = len(pred.batch_shape)
        if n == 0:
            raise ValueError(
                f"`pred` has batch shape (); the selection by {u.name} needs the alternatives on "
                "a batch axis, e.g. [..., K]."
            )
        if not -n <= u.alternatives < n:
            raise ValueError(
                f"`axis` {u.alternatives} of select({u.name}) is out of range for `pred` of "
                f"batch shape {pred.batch_shape}."
            )
        u = dataclasses.replace(u, alternatives=u.alternatives % n - n)
    return u
