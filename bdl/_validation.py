"""Input checks that name the offending argument.

Checks run only on concrete arrays: under ``jit``/``vmap`` the values are tracers and cannot be
inspected, so validation happens at the edge (constructors called eagerly, ``evaluate``), and
traced code pays nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "as_float",
    "check_finite",
    "check_positive",
    "check_probability",
    "check_simplex",
    "check_shape",
    "check_choice",
    "is_concrete",
]


def is_concrete(x) -> bool:
    """True when ``x`` holds values (not a tracer inside ``jit``/``vmap``/``grad``)."""
    return not isinstance(x, jax.core.Tracer)


def as_float(x) -> jax.Array:
    """``x`` as a floating array of the default float dtype (float32, or float64 under x64)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def check_finite(name: str, x) -> None:
    """Raise ``ValueError`` if ``x`` contains NaN or +-inf."""
    if is_concrete(x):
        arr = np.asarray(x)
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            raise ValueError(f"`{name}` contains {n_bad} NaN or infinite value(s).")


def check_positive(name: str, x) -> None:
    """Raise ``ValueError`` unless every entry of ``x`` is finite and > 0."""
    check_finite(name, x)
    if is_concrete(x):
        arr = np.asarray(x)
        if np.any(arr <= 0):
            raise ValueError(f"`{name}` must be > 0 everywhere; smallest value is {arr.min()!r}.")


def check_probability(name: str, p) -> None:
    """Raise ``ValueError`` unless every entry of ``p`` lies in [0, 1]."""
    check_finite(name, p)
    if is_concrete(p):
        arr = np.asarray(p)
        if np.any((arr < 0) | (arr > 1)):
            raise ValueError(
                f"`{name}` must lie in [0, 1]; got values in [{arr.min()!r}, {arr.max()!r}]."
            )


def check_simplex(name: str, p, axis: int, atol: float = 1e-4) -> None:
    """Raise ``ValueError`` unless ``p`` is in [0, 1] and sums to one along ``axis``."""
    check_probability(name, p)
    if is_concrete(p):
        total = np.asarray(p).sum(axis=axis)
        worst = float(np.max(np.abs(total - 1.0))) if total.size else 0.0
        if worst > atol:
            raise ValueError(
                f"`{name}` must sum to one along axis {axis}; off by up to {worst:.3g}."
            )


def check_shape(name: str, x, expected: Sequence[int | None]) -> None:
    """Raise ``ValueError`` unless ``x.shape`` matches ``expected`` (``None`` = any size)."""
    shape = tuple(np.shape(x))
    ok = len(shape) == len(expected) and all(
        e is None or e == s for s, e in zip(shape, expected, strict=True)
    )
    if not ok:
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"`{name}` has shape {shape}; expected {want}.")


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``, listing them."""
    if value not in choices:
        raise ValueError(
            f"Unknown {name} {value!r}; choose one of: {', '.join(map(repr, choices))}."
        )
