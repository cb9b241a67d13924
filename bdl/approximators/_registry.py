"""The method registry and ``bdl.fit``: one call for every posterior approximator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jax.sharding import Mesh

from bdl.approximators._ensemble import EnsembleOptions, fit_ensemble, fit_ensemble_seeds
from bdl.approximators._hmc import HMCOptions, NUTSOptions, fit_hmc, fit_nuts
from bdl.approximators._map import fit_map, fit_map_seeds
from bdl.approximators._method import Method, options_from_kwargs
from bdl.approximators._options import TrainOptions
from bdl.approximators._sgmcmc import (
    CyclicalOptions,
    SGHMCOptions,
    SGLDOptions,
    fit_cyclical_sgld,
    fit_sghmc,
    fit_sgld,
)
from bdl.approximators._vi import VIOptions, fit_vi
from bdl.approximators.laplace import LaplaceOptions, fit_laplace
from bdl.likelihoods import Likelihood
from bdl.models import as_network
from bdl.training import as_key, check_inputs, prepare_data

# name -> Method (typed options), or a legacy ``fit(key, network, likelihood, batch, **options)``
_REGISTRY: dict[str, Method | Callable[..., Any]] = {
    "map": Method(TrainOptions, fit_map, fit_map_seeds, carries_state=True),
    "ensemble": Method(EnsembleOptions, fit_ensemble, fit_ensemble_seeds, carries_state=True),
    "laplace": Method(LaplaceOptions, fit_laplace),
    "vi": Method(VIOptions, fit_vi),
    "sgld": Method(SGLDOptions, fit_sgld),
    "sghmc": Method(SGHMCOptions, fit_sghmc),
    "cyclical_sgld": Method(CyclicalOptions, fit_cyclical_sgld),
    "hmc": Method(HMCOptions, fit_hmc),
    "nuts": Method(NUTSOptions, fit_nuts),
}


def available() -> list[str]:
    """Names of the registered methods, for ``bdl.fit``."""
    return sorted(_REGISTRY)


def register(name: str, method: Method | Callable[..., Any]) -> None:
    """Register a ``Method`` (typed options; see ``bdl.approximators._method``) under
    ``name``; a plain ``fit(key, network, likelihood, batch, **options)`` is accepted too."""
    _REGISTRY[name] = method


def options_class(method: str) -> type | None:
    """The options dataclass of ``method`` (None for a method registered as a plain
    function); ``bdl.fit(method, ..., **kwargs)`` builds one from the keywords."""
    entry = _entry(method)
    return entry.options if isinstance(entry, Method) else None


def make_options(method: str, **kwargs: Any) -> Any:
    """``method``'s options from flat keywords, checked now (an unknown name or a bad value
    raises, naming it): what ``bdl.fit(method, ..., **kwargs)`` does first."""
    entry = _entry(method)
    if not isinstance(entry, Method):
        raise TypeError(f"Method {method!r} takes its options as keywords only.")
    return options_from_kwargs(entry.options, kwargs, method)


def fit(method: str, model: Any, likelihood: Likelihood, data: Any, *, key: Any,
        options: Any = None, **kwargs: Any):
    """Fit a posterior approximation.

    Args:
      method: one of ``available()`` (e.g. ``"map"``, ``"ensemble"``).
      model: a bdl model (``bdl.models.MLP``), a Flax Linen module, an NNX module or a factory
        ``rngs -> nnx.Module``.
      likelihood: ``bdl.likelihoods.Gaussian(...)`` or ``Categorical()``.
      data: ``(x, y)`` with ``x [N, ...]`` and ``y [N]`` / ``[N, D]``.
      key: a ``jax.random.key``; the result is a pure function of it.
      options: the method's options object (e.g. ``EnsembleOptions(num_members=3)``), or
      **kwargs: its fields (and those of the options it composes) as keywords; unknown ones
        raise.

    Returns:
      A ``bdl.approximators.Posterior``: ``predict(x, key=...)`` returns a ``bdl.Predictive``.
    """
    key = as_key(key)
    network, batch = _prepare(method, model, likelihood, data, key)
    entry = _REGISTRY[method]
    if not isinstance(entry, Method):
        if options is not None:
            raise TypeError(f"Method {method!r} takes its options as keywords only.")
        return entry(key, network, likelihood, batch, **kwargs)
    return entry.fit(key, network, likelihood, batch, _options(entry, method, options, kwargs))


def fit_seeds(method: str, model: Any, likelihood: Likelihood, data: Any, *, keys: Any,
              mesh: Mesh | None = None, options: Any = None, **kwargs: Any) -> list[Any]:
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
    entry = _REGISTRY[method]
    if not isinstance(entry, Method):
        if options is not None:
            raise TypeError(f"Method {method!r} takes its options as keywords only.")
        return [entry(k, network, likelihood, batch, **kwargs) for k in keys]
    opts = _options(entry, method, options, kwargs)
    if entry.fit_seeds is not None:
        return entry.fit_seeds(keys, network, likelihood, batch, opts, mesh=mesh)
    return [entry.fit(k, network, likelihood, batch, opts) for k in keys]


def _options(entry: Method, method: str, options: Any, kwargs: dict[str, Any]) -> Any:
    if options is None:
        return options_from_kwargs(entry.options, kwargs, method)
    if kwargs:
        raise TypeError(f"Pass either `options` or keyword options to {method!r}, not both "
                        f"(got both and {sorted(kwargs)}).")
    if not isinstance(options, entry.options):
        raise TypeError(f"`options` for {method!r} must be a {entry.options.__name__}; got "
                        f"{type(options).__name__}.")
    return options


def _entry(method: str):
    if method not in _REGISTRY:
        raise ValueError(f"Unknown method {method!r}; available: {', '.join(available())}.")
    return _REGISTRY[method]


def _prepare(method: str, model: Any, likelihood: Likelihood, data: Any, key: jax.Array):
    entry = _entry(method)
    if not isinstance(likelihood, Likelihood):
        raise TypeError(
            f"`likelihood` must be a bdl likelihood (Gaussian, Categorical); got "
            f"{type(likelihood).__name__}."
        )
    x = check_inputs(data[0] if isinstance(data, (tuple, list)) and data else data, "x")
    network = as_network(model, x[:1])
    if network.has_state and not (isinstance(entry, Method) and entry.carries_state):
        carriers = sorted(n for n, e in _REGISTRY.items()
                          if isinstance(e, Method) and e.carries_state)
        raise ValueError(
            f"`model` carries state besides its parameters (BatchNorm statistics), which "
            f"method {method!r} cannot carry yet; use one of {carriers}, or a model without "
            "it (LayerNorm, GroupNorm)."
        )
    return network, prepare_data(data, likelihood, network, key)
