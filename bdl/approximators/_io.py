"""Saving and loading posteriors as plain data (msgpack + JSON), without pickling code.

A saved posterior is a directory holding

- ``meta.json``: the format (``"bdl-posterior-v3"``), the posterior ``kind`` (its class's
  ``Posterior.kind``), the method, the input shape, the likelihood and the ``info`` entries
  that could not be stored (``dropped_info``);
- ``arrays.msgpack``: ``posterior.to_state()`` (arrays and settings);
- ``info.msgpack``: ``info`` (nested dicts / lists / tuples of numbers, strings and numpy
  arrays survive; anything else, e.g. a callable, is dropped and named in ``dropped_info``).

Only the ``Posterior`` contract is used: ``save`` writes ``to_state()``, ``load`` calls the
saved kind's ``from_state``. The model and likelihood are code, not data: ``load(path, model,
likelihood)`` takes them again, as ``torch``'s ``load_state_dict`` does, checks the likelihood
against the saved one and restores the arrays into the structure of the model's own
parameters (a different model is named as the mismatch). ``meta.json`` is written last (every
file atomically), so a directory with a ``meta.json`` holds a complete save. Directories
written by earlier versions (``"bdl-posterior-v2"``, ``"bdl-particles-v1"``) still load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax.numpy as jnp
from flax import serialization

from bdl._host import atomic_write
from bdl.approximators._ensemble import with_random_prior
from bdl.approximators._method import Posterior
from bdl.approximators._state import decode, encode, is_encoded
from bdl.likelihoods import Likelihood
from bdl.models import as_network

# every posterior class registers its kind with the Posterior base on import
from bdl.approximators import _posterior, _sample_posterior, _vi  # noqa: F401  isort: skip
from bdl.approximators.laplace import _posterior as _laplace_posterior  # noqa: F401  isort: skip

_FORMAT = "bdl-posterior-v3"
_FORMAT_V2 = "bdl-posterior-v2"
_FORMAT_V1 = "bdl-particles-v1"
_META, _ARRAYS, _INFO = "meta.json", "arrays.msgpack", "info.msgpack"
_V2_EXTRAS = ("hessian", "subset", "path")  # v2 kept these settings in meta.json


# ---------------------------------------------------------------------------------- save
def save(posterior: Posterior, path: str | os.PathLike) -> Path:
    """Write ``posterior`` (any posterior ``bdl.fit`` returns) to the directory ``path``.

    Returns ``path``. ``info`` entries that are not plain data (numbers, strings, numpy
    arrays, nested dicts / lists of them) are dropped and listed in ``meta.json``
    (``dropped_info``).
    """
    if not isinstance(posterior, Posterior):
        raise TypeError(f"`posterior` must be a posterior returned by bdl.fit; got "
                        f"{type(posterior).__name__}.")
    path = Path(path)
    arrays = encode(posterior.to_state())
    dropped: list[str] = []
    info = encode(dict(posterior.info), "info", dropped)
    meta = {
        "format": _FORMAT,
        "kind": posterior.kind,
        "method": posterior.method,
        "input_shape": list(posterior.input_shape),
        "likelihood": repr(posterior.likelihood),
        "dropped_info": dropped,
    }
    path.mkdir(parents=True, exist_ok=True)
    atomic_write(path / _ARRAYS, serialization.msgpack_serialize(arrays))
    atomic_write(path / _INFO, serialization.msgpack_serialize(info))
    atomic_write(path / _META, json.dumps(meta, indent=2).encode())
    return path


# ---------------------------------------------------------------------------------- load
def load(path: str | os.PathLike, model: Any, likelihood: Likelihood) -> Posterior:
    """Read a posterior written by ``save``; ``model`` and ``likelihood`` as given to ``fit``
    (the arrays are restored into the structure of the model's own parameters; a likelihood
    other than the saved one raises a ``ValueError`` naming both)."""
    path = Path(path)
    meta_file = path / _META
    if not meta_file.is_file():
        raise FileNotFoundError(
            f"`path` {str(path)!r} does not hold a saved posterior (no {_META}; write one with "
            "bdl.approximators.save)."
        )
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"`path` {str(path)!r}: {_META} is not valid JSON ({err}).") from err
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt == _FORMAT_V1:
        return _load_v1(path, meta, model, likelihood)
    if fmt not in (_FORMAT, _FORMAT_V2):
        raise ValueError(
            f"`path` {str(path)!r} holds format {fmt!r}; expected {_FORMAT!r} (or "
            f"{_FORMAT_V2!r}, {_FORMAT_V1!r})."
        )
    _check_likelihood(path, meta, likelihood)
    try:
        cls = Posterior.of_kind(meta.get("kind"))
    except ValueError as err:
        raise ValueError(f"`path` {str(path)!r} holds an unknown posterior kind "
                         f"{meta.get('kind')!r}.") from err
    arrays = _read_msgpack(path, _ARRAYS)
    if fmt == _FORMAT:
        state = decode(arrays)
    else:  # v2: some entries encoded one by one, settings in meta.json
        state = {k: decode(v) if is_encoded(v) else v for k, v in arrays.items()}
        state.update({k: meta[k] for k in _V2_EXTRAS if k in meta})
    info = decode(_read_msgpack(path, _INFO))
    input_shape = tuple(int(d) for d in meta["input_shape"])
    network = as_network(model, jnp.zeros((1, *input_shape), jnp.float32))
    if info.get("random_prior_scale"):
        network = with_random_prior(network, float(info["random_prior_scale"]))
    try:
        return cls.from_state(state, method=meta["method"], network=network,
                              likelihood=likelihood, info=info, input_shape=input_shape)
    except ValueError as err:
        raise ValueError(str(err).replace("`path`", f"`path` {str(path)!r}", 1)) from err


def _check_likelihood(path: Path, meta: dict, likelihood: Likelihood) -> None:
    """The likelihood given to ``load`` must be the one the posterior was fitted with: a
    Gaussian posterior read back as a Categorical would predict nonsense."""
    if not isinstance(likelihood, Likelihood):
        raise TypeError(f"`likelihood` must be a bdl likelihood; got {type(likelihood).__name__}.")
    saved = meta.get("likelihood")
    if saved is not None and saved != repr(likelihood):
        raise ValueError(
            f"`likelihood` {likelihood!r} does not match the one the posterior at {str(path)!r} "
            f"was fitted with, {saved}; pass that likelihood to load."
        )


def _load_v1(path: Path, meta: dict, model: Any, likelihood: Likelihood) -> Posterior:
    """The particle-only format: ``particles.msgpack`` and ``info`` inside ``meta.json``."""
    data_file = path / "particles.msgpack"
    if not data_file.is_file():
        raise FileNotFoundError(f"`path` {str(path)!r} lacks particles.msgpack (format "
                                f"{_FORMAT_V1!r}).")
    _check_likelihood(path, meta, likelihood)
    network = as_network(model, jnp.zeros((1, *meta["input_shape"]), jnp.float32))
    if meta["info"].get("random_prior_scale"):
        network = with_random_prior(network, float(meta["info"]["random_prior_scale"]))
    raw = serialization.msgpack_restore(data_file.read_bytes())
    return Posterior.of_kind("particles").from_state(
        {"particles": raw}, method=meta["method"], network=network, likelihood=likelihood,
        info=meta["info"], input_shape=tuple(meta["input_shape"]))


def _read_msgpack(path: Path, name: str) -> Any:
    file = path / name
    if not file.is_file():
        raise FileNotFoundError(f"`path` {str(path)!r} lacks {name} (an incomplete save?).")
    return serialization.msgpack_restore(file.read_bytes())
