"""The method registry and ``bdl.fit``: one call for every posterior approximator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jax.sharding import Mesh

from bdl.approximators._ensemble import fit_ensemble, fit_ensemble_seeds
from bdl.approximators._hmc import fit_hmc, fit_nuts
from bdl.approximators._map import fit_map, fit_map_seeds
from bdl.approximators._sgmcmc import fit_cyclical_sgld, fit_sghmc, fit_sgld
from bdl.approximators._vi import fit_vi
from bdl.approximators.laplace import fit_laplace
from bdl.likelihoods import Likelihood
from bdl.models import as_network
from bdl.training import as_key, check_inputs, prepare_data

# name -> fit(key, network, likelihood, batch, **options) -> posterior
_REGISTRY: dict[str, Callable[..., Any]] = {
    "map": fit_map,
    "ensemble": fit_ensemble,
    "laplace": fit_laplace,
    "vi": fit_vi,
    "sgld": fit_sgld,
    "sghmc": fit_sghmc,
    "cyclical_sgld": fit_cyclical_sgld,
    "hmc": fit_hmc,
    "nuts": fit_nuts,
}


# name -> fit_seeds(keys [S], network, likelihood, batch, *, mesh, **options) -> S posteriors,
# for methods whose seeds train together in one compiled program
_SEED_BATCHED: dict[str, Callable[..., list[Any]]] = {
    "map": fit_map_seeds,
    "ensemble": fit_ensemble_seeds,
}


# methods whose posteriors hold the model's non-parameter state (BatchNorm statistics)
_CARRIES_STATE = frozenset({"map", "ensemble"})


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
    key = as_key(key)
    network, batch = _prepare(method, model, likelihood, data, key)
    return _REGISTRY[method](key, network, likelihood, batch, **options)


def fit_seeds(method: str, model: Any, likelihood: Likelihood, data: Any, *, keys: Any,
              mesh: Mesh | None = None, **options: Any) -> list[Any]:
    """Fit one posterior per key of ``keys`` ``[S]``; posterior ``s`` equals
    ``fit(method, ..., key=keys[s], **options)`` (to float tolerance).

    For "map" and "ensemble" all S seeds (x members) train as ONE compiled, vmapped program;
    with ``mesh`` (a one-axis ``jax.sharding.Mesh``) their particles are sharded over its
    devices. Other methods run their seeds one after another.
    """
    keys = as_key(keys)
    if keys.ndim != 1:
        raise ValueError(f"`keys` must be a 1-D batch of keys [S]; got shape {keys.shape}.")
    network, batch = _prepare(method, model, likelihood, data, keys[0])
    if method in _SEED_BATCHED:
        return _SEED_BATCHED[method](keys, network, likelihood, batch, mesh=mesh, **options)
    return [_REGISTRY[method](k, network, likelihood, batch, **options) for k in keys]


def _prepare(method: str, model: Any, likelihood: Likelihood, data: Any, key: jax.Array):
    if method not in _REGISTRY:
        raise ValueError(f"Unknown method {method!r}; available: {', '.join(available())}.")
    if not isinstance(likelihood, Likelihood):
        raise TypeError(
            f"`likelihood` must be a bdl likelihood (Gaussian, Categorical); got "
            f"{type(likelihood).__name__}."
        )
    x = check_inputs(data[0] if isinstance(data, (tuple, list)) and data else data, "x")
    network = as_network(model, x[:1])
    if network.has_state and method not in _CARRIES_STATE:
        raise ValueError(
            f"`model` carries state besides its parameters (BatchNorm statistics), which "
            f"method {method!r} cannot carry yet; use one of {sorted(_CARRIES_STATE)}, or a "
            "model without it (LayerNorm, GroupNorm)."
        )
    return network, prepare_data(data, likelihood, network, key)
