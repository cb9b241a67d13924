"""The expected value of perfect information (EVPI): what knowing the outcome would be worth.

``EVPI = E_y[max_a u(a, y)] - max_a E_y[u(a, y)]`` under the predictive, per decision. It is
the predictive's own expected regret of its Bayes action, so its mean over the test set is the
regret the model *expects*, to set against the regret it *realised* (``evaluate``). It is
zero for a point predictive (a model that believes it knows the outcome) and grows with the
uncertainty that matters to the decision.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bdl.decisions._expected import _class_values, _draws, _sum_over_draws, check_fit
from bdl.decisions._utilities import Utility
from bdl.predictive import Categorical, Point, Predictive, Samples

__all__ = ["evpi"]


def evpi(
    pred: Predictive,
    u: Utility,
    *,
    key: jax.Array | None = None,
    num_samples: int = 1000,
) -> jax.Array:
    """Expected value of perfect information of every decision.

    Args:
      pred: the predictive, batch shape ``[*batch]``.
      u: what is decided: an action utility (one decision per batch element) or a selection
        ``select(u, axis)``. For a selection the outcomes of the alternatives are taken
        jointly, as ``pred.sample`` draws them (a mixture's components are shared by the batch).
      key: PRNG key, needed unless the expectation is exact: a point or sample predictive (the
        draws themselves), a categorical with an action utility (the sum over classes).
      num_samples: Monte Carlo draws otherwise; the same draws give both terms, so the
        estimate is never negative.

    Returns:
      ``[*batch]`` for an action utility, ``[...]`` (the batch without the alternatives axis)
      for a selection; in the units of the utility, ``>= 0``. Its mean is the EVPI of the set.

    Example::

        pred = bdl.Predictive.categorical(jnp.array([[[0.7, 0.3]]]))   # one example
        evpi(pred, table(jnp.eye(2)))    # E[max] = 1, max E = 0.7 -> [0.3]
    """
    u = check_fit(pred, u, decide=True)
    if isinstance(pred, Categorical) and u.actions is not None:
        probs, values = _class_values(pred, u)  # [C, *batch, 1], [C, *batch, A]
        e_max = jnp.sum(probs[..., 0] * jnp.max(values, axis=-1), axis=0)
        max_e = jnp.max(jnp.sum(probs * values, axis=0), axis=-1)
        return jnp.maximum(e_max - max_e, 0.0)
    if isinstance(pred, Point):
        draws = pred.values[None]
    elif isinstance(pred, Samples):
        draws = pred.samples
    elif key is None:
        raise ValueError(
            f"`key` is required: the EVPI of {u.name} under a {type(pred).__name__} predictive "
            "is estimated from joint draws (pass key=jax.random.key(...), and optionally "
            "num_samples)."
        )
    else:
        draws = _draws(pred, key, num_samples)

    def sums(block):
        values = u(block)  # [n, ..., choices]
        return jnp.sum(jnp.max(values, axis=-1), axis=0), jnp.sum(values, axis=0)

    e_max, mean_values = _sum_over_draws(sums, draws, u.num_actions or 1)
    return jnp.maximum(e_max - jnp.max(mean_values, axis=-1), 0.0)
