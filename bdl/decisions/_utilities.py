"""Utilities: what a decision is worth once the outcome is known.

A :class:`Utility` is one of three kinds (``Utility.kind``):

- an *outcome* utility (``threshold``, ``linear``, ``event``, ``custom(fn)``): ``fn(y)`` scores
  one outcome. On its own it says nothing about what is chosen, so the deciding functions
  (``choose``, ``evaluate``, ``evpi``, the curves) refuse it: say which decision you mean with
  one of the two forms below. ``expected_utility`` gives it per batch element, ``[*batch]``.
- a *selection* (``select(u, axis=-1)``): pick ONE of the K alternatives that lie along
  ``axis`` of the predictive's batch, each with its own outcome (routes, suppliers).
  Expected utility ``[..., K]`` (the alternatives moved last); the choice is ``[...]``.
- an *action* utility (``actions`` of shape ``[A]``): decide for EVERY batch element, scoring
  action ``a`` by ``fn(a, y)`` against that element's outcome ``y``: ``act(u, cost)`` (act or
  wait), ``asymmetric`` (order quantity), ``table``/``selective`` (classify or abstain),
  ``custom(fn, actions)``. Expected utility ``[*batch, A]``; the choice is ``[*batch]``.

Either way the last axis of an expected utility indexes the choices, and the Bayes action is
its argmax. Every utility states the predictive it fits (``task``: regression or
classification; ``num_classes`` for a table), and the deciding functions check it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from bdl._validation import as_float, check_choice, check_finite, check_probability
from bdl.predictive import GaussianMixture, Predictive

__all__ = [
    "Utility",
    "threshold",
    "linear",
    "event",
    "asymmetric",
    "table",
    "selective",
    "custom",
    "get",
    "available",
]

ClosedForm = Callable[[Predictive], "jax.Array | None"]
TASKS = ("regression", "classification")


@dataclasses.dataclass(frozen=True, eq=False)
class Utility:
    """A utility function with its choice set and, where one exists, its closed-form expectation.

    Build one with the factories of :mod:`bdl.decisions` rather than by hand.

    Attributes:
      fn: outcome utility or selection: ``fn(y) -> u`` elementwise (``y`` of any shape, ``u``
        the same shape). Action utility: ``fn(a, y) -> u`` broadcasting ``a`` against ``y``; it
        is called as ``fn(actions, y[..., None])`` and returns ``[..., A]``.
      actions: ``[A]`` grid of actions, or ``None`` (outcome utility or selection).
      expected: optional ``expected(pred) -> EU or None``: the exact expected utility for the
        kinds of predictive it knows (``[*batch_shape]`` elementwise for ``fn(y)``,
        ``[*batch_shape, A]`` for an action utility), ``None`` for the others (which then
        fall back to enumeration or Monte Carlo).
      bounds: ``(low, high)`` range of the utility when it is known (used to place the bins of
        the decision calibration), else ``None``.
      name: a short description for tables and error messages.
      alternatives: the batch axis of the predictive that holds the alternatives of a
        selection (set by :func:`select`), else ``None``.
      task: ``"regression"`` or ``"classification"``: the predictive it fits (``None``: any).
      num_classes: the number of classes a classification utility is written for, if fixed.
    """

    fn: Callable[..., jax.Array]
    actions: jax.Array | None = None
    expected: ClosedForm | None = None
    bounds: tuple[float, float] | None = None
    name: str = "custom"
    alternatives: int | None = None
    task: str | None = None
    num_classes: int | None = None

    @property
    def kind(self) -> str:
        """``"action"``, ``"select"`` or ``"outcome"`` (see the module docstring)."""
        if self.actions is not None:
            return "action"
        return "outcome" if self.alternatives is None else "select"

    @property
    def is_selection(self) -> bool:
        """True for a selection: the choices are the alternatives along ``alternatives``."""
        return self.kind == "select"

    @property
    def is_action(self) -> bool:
        """True for an action utility: one decision per batch element among ``actions``."""
        return self.kind == "action"

    @property
    def num_actions(self) -> int | None:
        """Number of actions ``A`` (``None`` for an outcome utility or a selection)."""
        return None if self.actions is None else int(self.actions.shape[0])

    def __call__(self, y) -> jax.Array:
        """Utility of every choice given outcomes ``y``.

        Outcome utility: ``y`` of any shape -> the same shape (elementwise).
        Selection: ``y`` with the alternatives on axis ``alternatives`` -> ``[..., K]`` (the
        alternatives moved last). Action: ``y`` is ``[...]`` (one outcome each) -> ``[..., A]``.
        """
        values = elementwise(self, jnp.asarray(y))
        if self.alternatives is not None:
            values = jnp.moveaxis(values, self.alternatives, -1)
        return values

    def __repr__(self) -> str:
        kind = {"outcome": "outcome", "select": f"select along axis {self.alternatives}",
                "action": f"{self.num_actions} actions"}[self.kind]
        return f"Utility({self.name}, {kind})"


def elementwise(u: Utility, y: jax.Array) -> jax.Array:
    """``fn(y)`` (``[*y.shape]``) or ``fn(actions, y[..., None])`` (``[*y.shape, A]``): the
    utility before the alternatives of a selection are moved last."""
    if u.actions is None:
        return jnp.asarray(u.fn(y))
    return jnp.asarray(u.fn(u.actions, y[..., None]))


# --------------------------------------------------------------------------- regression
def threshold(t, below: bool = True) -> Utility:
    """Outcome utility ``u(y) = 1[y <= t]`` (``below=False``: ``1[y > t]``), regression.

    It serves both kinds of decision:

    - ``select(threshold(30.0))``: take the alternative (route) most likely to arrive within
      30 minutes, the alternatives on the last batch axis;
    - ``act(threshold(200.0, below=False), cost=0.2)``: for each patient, act iff
      P(y > 200) > 0.2.

    Its expected utility is the predictive CDF at ``t`` (one minus it for ``below=False``),
    exact for every regression predictive. ``t`` is a scalar or broadcasts against the batch
    shape (a deadline per alternative).
    """
    t = as_float(t)
    check_finite("t", t)

    def fn(y):
        return (y <= t if below else y > t).astype(jnp.result_type(float))

    def expected(pred):
        if pred.is_classification:
            return None
        p = pred.cdf(t)
        return p if below else 1.0 - p

    name = f"1[y {'<=' if below else '>'} {_fmt(t)}]"
    return Utility(fn, None, expected, (0.0, 1.0), name, task="regression")


def linear(scale: float = -1.0, offset: float = 0.0) -> Utility:
    """Outcome utility ``u(y) = offset + scale * y``, regression; ``select(linear())`` (the
    default ``-y``) takes the alternative fastest in expectation. Its expected utility is
    ``offset + scale * mean``."""
    scale, offset = as_float(scale), as_float(offset)
    check_finite("scale", scale)
    check_finite("offset", offset)

    def fn(y):
        return offset + scale * y

    def expected(pred):
        return None if pred.is_classification else offset + scale * pred.mean()

    return Utility(fn, None, expected, None, f"{_fmt(offset)} + {_fmt(scale)} y",
                   task="regression")


def asymmetric(actions, under: float = 1.0, over: float = 1.0) -> Utility:
    """Newsvendor action utility ``u(a, y) = -(under * max(y - a, 0) + over * max(a - y, 0))``.

    ``actions`` is a 1-D grid ``[A]`` of candidate quantities; ``under`` is the cost per unit
    of falling short of ``y``, ``over`` per unit of excess. The Bayes action is the
    ``under / (under + over)`` quantile of the predictive. Closed form for Gaussian mixtures,
    per component: E[(Y - a)^+] = s phi(z) + (mu - a)(1 - Phi(z)), z = (a - mu) / s.
    """
    actions = _grid("actions", actions)
    under, over = as_float(under), as_float(over)
    for name, v in (("under", under), ("over", over)):
        check_finite(name, v)
        if v.ndim or float(v) < 0:
            raise ValueError(f"`{name}` must be a non-negative scalar; got {v!r}.")
    if float(under) + float(over) <= 0:
        raise ValueError("`under` and `over` cannot both be zero.")

    def fn(a, y):
        return -(under * jnp.maximum(y - a, 0.0) + over * jnp.maximum(a - y, 0.0))

    def expected(pred):
        if not isinstance(pred, GaussianMixture):
            return None
        return _newsvendor_mixture(pred.loc, pred.scale, pred.weights, actions, under, over)

    name = f"newsvendor(under={_fmt(under)}, over={_fmt(over)})"
    return Utility(fn, actions, expected, None, name, task="regression")


@jax.jit
def _newsvendor_mixture(loc, scale, weights, actions, under, over) -> jax.Array:
    """Expected newsvendor utility ``[*batch, A]`` of a mixture ``[S, *batch]`` at ``[A]``."""
    mu, s, w = (x[..., None] for x in (loc, scale, weights))
    z = (actions - mu) / s
    shortfall = s * jnp.exp(-0.5 * z**2) / jnp.sqrt(2.0 * jnp.pi) + (mu - actions) * ndtr(-z)
    excess = shortfall - (mu - actions)  # E[(a - Y)^+] = E[(Y - a)^+] - E[Y - a]
    return -jnp.sum(w * (under * shortfall + over * excess), axis=0)


# --------------------------------------------------------------------------- classification
def table(matrix, *, name: str = "table") -> Utility:
    """Action utility for classification from a table ``matrix[a, c]`` ``[A, C]``: the utility
    of action ``a`` when the true class is ``c``. Expected utility: ``probs @ matrix.T``
    ``[*batch, A]``. It fits only a classification predictive with ``C`` classes."""
    matrix = as_float(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"`matrix` must be [actions, classes]; got shape {matrix.shape}.")
    check_finite("matrix", matrix)
    actions = jnp.arange(matrix.shape[0])

    def fn(a, y):
        return matrix[a, jnp.asarray(y).astype(jnp.int32)]

    def expected(pred):
        return pred.probs() @ matrix.T if pred.is_classification else None

    lo, hi = float(np.min(matrix)), float(np.max(matrix))
    return Utility(fn, actions, expected, (lo, hi), name, task="classification",
                   num_classes=int(matrix.shape[1]))


def selective(num_classes: int, abstain_cost: float) -> Utility:
    """Classify or abstain: actions ``0..C-1`` predict that class (utility 1 if right, 0 if
    wrong); action ``C`` abstains (utility ``1 - abstain_cost``). The Bayes action abstains
    exactly when the largest class probability is below ``1 - abstain_cost``."""
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"`num_classes` must be a positive int; got {num_classes!r}.")
    check_probability("abstain_cost", abstain_cost)
    cost = float(abstain_cost)
    matrix = jnp.concatenate([jnp.eye(num_classes), jnp.full((1, num_classes), 1.0 - cost)], axis=0)
    return table(matrix, name=f"selective(C={num_classes}, abstain_cost={cost:g})")


# --------------------------------------------------------------------------- generic
def custom(
    fn: Callable[..., jax.Array],
    actions=None,
    *,
    expected: ClosedForm | None = None,
    bounds: tuple[float, float] | None = None,
    name: str = "custom",
    task: str | None = None,
) -> Utility:
    """Any utility: ``fn(y)`` (an outcome utility, ``actions=None``: wrap it in
    :func:`select` or :func:`act`) or ``fn(a, y)`` over a 1-D ``actions`` grid ``[A]`` (one
    decision per batch element). ``fn`` must be written in ``jax.numpy`` and broadcast.
    ``task`` (``"regression"``/``"classification"``) restricts the predictives it accepts.
    Without a closed form ``expected``, the expected utility is exact for point, sample and
    categorical predictives and Monte Carlo otherwise."""
    if not callable(fn):
        raise TypeError(f"`fn` must be callable; got {type(fn).__name__}.")
    if actions is not None:
        actions = _grid("actions", actions)
    if task is not None:
        check_choice("task", task, TASKS)
    return Utility(fn, actions, expected, bounds, name, task=task)


def event(classes) -> Utility:
    """Outcome utility ``u(y) = 1[y in classes]`` for class labels (classification).

    ``act(event(1), cost=0.2)`` treats an example iff P(class 1) > 0.2;
    ``select(event(1))`` picks the alternative most likely to be of class 1. ``classes`` is
    one label or a sequence of labels. Expected utility: the summed class probabilities.
    """
    labels = np.atleast_1d(np.asarray(classes))
    if labels.ndim != 1 or labels.size == 0 or labels.dtype.kind not in "iu" or labels.min() < 0:
        raise ValueError(f"`classes` must be a non-negative int or a 1-D list of them; got "
                         f"{classes!r}.")
    top = int(labels.max())
    idx = jnp.asarray(labels)

    def fn(y):
        y = jnp.asarray(y)
        return jnp.any(y[..., None] == idx, axis=-1).astype(jnp.result_type(float))

    def expected(pred):
        if not pred.is_classification:
            return None
        probs = pred.probs()
        if top >= probs.shape[-1]:
            raise ValueError(f"`classes` holds label {top}, but `pred` has only "
                             f"{probs.shape[-1]} classes.")
        return jnp.sum(probs[..., idx], axis=-1)

    name = f"1[y in {{{', '.join(str(int(c)) for c in labels)}}}]"
    return Utility(fn, None, expected, (0.0, 1.0), name, task="classification")


_REGISTRY: dict[str, Callable[..., Utility]] = {
    "threshold": threshold,
    "linear": linear,
    "event": event,
    "asymmetric": asymmetric,
    "table": table,
    "selective": selective,
    "custom": custom,
}


def available() -> tuple[str, ...]:
    """Names accepted by :func:`get`."""
    return tuple(_REGISTRY)


def get(name: str, *args, **kwargs) -> Utility:
    """Build a utility by name, e.g. ``get("threshold", 30.0)``."""
    check_choice("utility", name, available())
    return _REGISTRY[name](*args, **kwargs)


def _check_utility(u) -> None:
    if not isinstance(u, Utility):
        raise TypeError(
            f"`u` must be a bdl.decisions.Utility (e.g. bdl.decisions.threshold(30.0)); "
            f"got {type(u).__name__}."
        )


def _grid(name: str, actions) -> jax.Array:
    actions = jnp.asarray(actions)
    if actions.ndim != 1 or actions.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D grid [A]; got shape {actions.shape}.")
    check_finite(name, actions)
    return actions


def _fmt(x) -> str:
    x = np.asarray(x)
    return f"{float(x):g}" if x.ndim == 0 else f"array{tuple(x.shape)}"
