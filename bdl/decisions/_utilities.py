"""Utilities: what a decision is worth once the outcome is known.

A :class:`Utility` is one of two kinds:

- a *selection* utility (``actions is None``): ``fn(y)`` scores one outcome; the predictive's
  last batch axis holds the K alternatives (routes, treatments, ...), each with its own outcome,
  and choosing means picking one of them. Expected utility: ``[..., K]``.
- an *action* utility (``actions`` of shape ``[A]``): ``fn(a, y)`` scores action ``a`` when the
  single outcome is ``y`` (order quantity, treat / do not treat, classify / abstain).
  Expected utility: ``[*batch_shape, A]``.

Either way the last axis of an expected utility indexes the choices, and the Bayes action is
its argmax.
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
    "asymmetric",
    "table",
    "selective",
    "custom",
    "get",
    "available",
]

ClosedForm = Callable[[Predictive], "jax.Array | None"]


@dataclasses.dataclass(frozen=True, eq=False)
class Utility:
    """A utility function with its choice set and, where one exists, its closed-form expectation.

    Attributes:
      fn: selection utility: ``fn(y) -> u`` elementwise (``y`` of any shape, ``u`` the same
        shape). Action utility: ``fn(a, y) -> u`` broadcasting ``a`` against ``y``; it is called
        as ``fn(actions, y[..., None])`` and returns ``[..., A]``.
      actions: ``[A]`` grid of actions, or ``None`` for a selection utility.
      expected: optional ``expected(pred) -> EU or None``: the exact expected utility for the
        kinds of predictive it knows (``[..., K]`` or ``[*batch_shape, A]``), ``None`` for the
        others (which then fall back to enumeration or Monte Carlo).
      bounds: ``(low, high)`` range of the utility when it is known (used to place the bins of
        the decision calibration), else ``None``.
      name: a short description for tables and error messages.
    """

    fn: Callable[..., jax.Array]
    actions: jax.Array | None = None
    expected: ClosedForm | None = None
    bounds: tuple[float, float] | None = None
    name: str = "custom"

    @property
    def is_selection(self) -> bool:
        """True when the choices are the alternatives on the predictive's last batch axis."""
        return self.actions is None

    @property
    def num_actions(self) -> int | None:
        """Number of actions ``A`` (``None`` for a selection utility)."""
        return None if self.actions is None else int(self.actions.shape[0])

    def __call__(self, y) -> jax.Array:
        """Utility of every choice given outcomes ``y``.

        Selection: ``y`` is ``[..., K]`` (one outcome per alternative) -> ``[..., K]``.
        Action: ``y`` is ``[...]`` (one outcome) -> ``[..., A]``.
        """
        y = jnp.asarray(y)
        if self.actions is None:
            return jnp.asarray(self.fn(y))
        return jnp.asarray(self.fn(self.actions, y[..., None]))

    def __repr__(self) -> str:
        kind = "selection" if self.actions is None else f"{self.num_actions} actions"
        return f"Utility({self.name}, {kind})"


# --------------------------------------------------------------------------- regression
def threshold(t, below: bool = True) -> Utility:
    """Selection utility ``u(y) = 1[y <= t]`` (``below=False``: ``1[y > t]``).

    "Arrive within 30 minutes" is ``threshold(30.0)``. Its expected utility is the predictive
    CDF at ``t`` (one minus it for ``below=False``), exact for every regression predictive.
    ``t`` is a scalar or broadcasts against the batch shape (a deadline per alternative).
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
    return Utility(fn, None, expected, (0.0, 1.0), name)


def linear(scale: float = -1.0, offset: float = 0.0) -> Utility:
    """Selection utility ``u(y) = offset + scale * y``; the default ``-y`` means "fastest
    expected". Its expected utility is ``offset + scale * mean``."""
    scale, offset = as_float(scale), as_float(offset)
    check_finite("scale", scale)
    check_finite("offset", offset)

    def fn(y):
        return offset + scale * y

    def expected(pred):
        return None if pred.is_classification else offset + scale * pred.mean()

    return Utility(fn, None, expected, None, f"{_fmt(offset)} + {_fmt(scale)} y")


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
    return Utility(fn, actions, expected, None, name)


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
    of action ``a`` when the true class is ``c``. Expected utility: ``probs @ matrix.T``."""
    matrix = as_float(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"`matrix` must be [actions, classes]; got shape {matrix.shape}.")
    check_finite("matrix", matrix)
    actions = jnp.arange(matrix.shape[0])

    def fn(a, y):
        return matrix[a, jnp.asarray(y).astype(jnp.int32)]

    def expected(pred):
        if not pred.is_classification:
            return None
        probs = pred.probs()
        if probs.shape[-1] != matrix.shape[1]:
            raise ValueError(
                f"`pred` has {probs.shape[-1]} classes but the utility table has "
                f"{matrix.shape[1]} columns."
            )
        return probs @ matrix.T

    lo, hi = float(np.min(matrix)), float(np.max(matrix))
    return Utility(fn, actions, expected, (lo, hi), name)


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
) -> Utility:
    """Any utility: ``fn(y)`` (selection, ``actions=None``) or ``fn(a, y)`` over a 1-D
    ``actions`` grid. ``fn`` must be written in ``jax.numpy`` and broadcast. Without a closed
    form ``expected``, the expected utility is exact for point, sample and categorical
    predictives and Monte Carlo otherwise."""
    if not callable(fn):
        raise TypeError(f"`fn` must be callable; got {type(fn).__name__}.")
    if actions is not None:
        actions = _grid("actions", actions)
    return Utility(fn, actions, expected, bounds, name)


_REGISTRY: dict[str, Callable[..., Utility]] = {
    "threshold": threshold,
    "linear": linear,
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


def _grid(name: str, actions) -> jax.Array:
    actions = jnp.asarray(actions)
    if actions.ndim != 1 or actions.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D grid [A]; got shape {actions.shape}.")
    check_finite(name, actions)
    return actions


def _fmt(x) -> str:
    x = np.asarray(x)
    return f"{float(x):g}" if x.ndim == 0 else f"array{tuple(x.shape)}"
