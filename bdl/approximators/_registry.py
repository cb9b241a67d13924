"""The method registry and ``bdl.fit``: one call for every posterior approximator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from bdl.approximators._ensemble import fit_ensemble
from bdl.approximators._map import fit_map
from bdl.approximators._vi import fit_vi
from bdl.likelihoods import Likelihood
from bdl.models import as_network
from bdl.training import as_key, check_inputs, prepare_data

# name -> fit(key, network, likelihood, batch, **options) -> posterior
_REGISTRY: dict[str, Callable[..., Any]] = {
    "map": fit_map,
    "ensemble": fit_ensemble,
    "vi": fit_vi,
}


def available() -> list[str]:
    """Names of the registered methods, for ``bdl.fit``."""
    return sorted(_REGISTRY)


def register(name: str, fit_fn: Callable[..., Any]) -> None:
    """Register ``fit_fn(key, network, likelihood, batch, **options)`` under ``name``."""
    _REGISTRY[name] = fit_fn


def fit(method: str, model: Any, likelihood: Likelihood, data: Any, *, key: Any, **options: Any):
    """Fit a posterior approximation.

    Args:
      method: one of ``available()`` (e.g. ``"map"``, ``"ensemble"``).
      model: a bdl model (``bdl.models.MLP``), a Flax Linen module, an NNX module or a factory
        ``rngs -> nnx.Module``.
      likelihood: ``bdl.likelihoods.Gaussian(...)`` or ``Categorical()``.
      data: ``(x, y)`` with ``x [N, ...]`` and ``y [N]`` / ``[N, D]``.
      key: a ``jax.random.key``; the result is a pure function of it.
      **options: method options (see each method's docstring); unknown ones raise.

    Returns:
      A posterior whose ``predict(x, key=...)`` returns a ``bdl.Predictive``.
    """
    if method not in _REGISTRY:
        raise ValueError(f"Unknown method {method!r}; available: {', '.join(available())}.")
    if not isinstance(likelihood, Likelihood):
        raise TypeError(
            f"`likelihood` must be a bdl likelihood (Gaussian, Categorical); got "
            f"{type(likelihood).__name__}."
        )
    key = as_key(key)
    x = check_inputs(data[0] if isinstance(data, (tuple, list)) and data else data, "x")
    network = as_network(model, x[:1])
    k_data, k_fit = jax.random.split(key)
    batch = prepare_data(data, likelihood, network, k_data)
    return _REGISTRY[method](k_fit, network, likelihood, batch, **options)
