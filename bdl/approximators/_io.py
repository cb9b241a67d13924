"""Saving and loading posteriors as plain data (msgpack + JSON), without pickling code.

A saved posterior is a directory holding

- ``meta.json``: the format (``"bdl-posterior-v2"``), the posterior ``kind`` (``"particles"``,
  ``"samples"``, ``"laplace"`` or ``"vi"``), the method, the input shape and what ``load``
  needs to rebuild the non-data parts (Laplace: ``hessian``/``subset``; VI: the path of the
  covered subtree), plus the ``info`` entries that could not be stored (``dropped_info``);
- ``arrays.msgpack``: the arrays (parameters, and for Laplace the mode, curvature, data terms,
  hyper-parameters and posterior factor);
- ``info.msgpack``: ``info`` (nested dicts / lists / tuples of numbers, strings and numpy
  arrays survive; anything else, e.g. a callable, is dropped and named in ``dropped_info``).

The model and likelihood are code, not data: ``load(path, model, likelihood)`` takes them
again, as ``torch``'s ``load_state_dict`` does, and restores the arrays into the structure of
the model's own parameters. ``meta.json`` is written last (every file atomically), so a
directory with a ``meta.json`` holds a complete save. Directories written in the older
particle-only format (``"bdl-particles-v1"``) still load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from bdl._host import atomic_write
from bdl.approximators._ensemble import with_random_prior
from bdl.approximators._posterior import ParticlePosterior
from bdl.approximators._sample_posterior import SamplePosterior
from bdl.approximators._vi import MeanField, VIPosterior
from bdl.approximators.laplace._curvature import DiagGGN, FullGGN, KronGGN
from bdl.approximators.laplace._gaussian import DiagFactor, FullFactor, KronFactor
from bdl.approximators.laplace._likelihood import FitTerms
from bdl.approximators.laplace._marglik import Hyper
from bdl.approximators.laplace._posterior import LaplacePosterior
from bdl.approximators.laplace._subnet import build_subnet
from bdl.likelihoods import Likelihood
from bdl.models import as_network

Posterior = ParticlePosterior | LaplacePosterior | VIPosterior

_FORMAT = "bdl-posterior-v2"
_FORMAT_V1 = "bdl-particles-v1"
_KINDS = ("particles", "samples", "laplace", "vi")
_META, _ARRAYS, _INFO = "meta.json", "arrays.msgpack", "info.msgpack"
# the only named tuples the array files may hold (restored by name, never by import path)
_NAMED = {cls.__name__: cls for cls in (FullGGN, DiagGGN, KronGGN, FullFactor, DiagFactor,
                                        KronFactor, FitTerms, Hyper, MeanField)}


# ---------------------------------------------------------------------------------- save
def save(posterior: Posterior, path: str | os.PathLike) -> Path:
    """Write ``posterior`` (any posterior ``bdl.fit`` returns) to the directory ``path``.

    Returns ``path``. ``info`` entries that are not plain data (numbers, strings, numpy
    arrays, nested dicts / lists of them) are dropped and listed in ``meta.json``
    (``dropped_info``).
    """
    path = Path(path)
    if isinstance(posterior, LaplacePosterior):
        kind = "laplace"
        arrays = {
            "net_params": _state(posterior.net_params),
            "theta": _encode(posterior.theta),
            "curvature": _encode(posterior.curvature),
            "terms": _encode(posterior.terms),
            "hyper": _encode(posterior.hyper),
            "factor": _encode(posterior.factor),
        }
        extra = {"hessian": posterior.hessian, "subset": posterior.subnet.subset}
    elif isinstance(posterior, VIPosterior):
        kind = "vi"
        arrays = {"loc": _state(posterior.q.loc), "raw_scale": _state(posterior.q.raw_scale),
                  "lik_params": _state(posterior.lik_params), "fixed": _state(posterior.fixed)}
        extra = {"path": _json_path(posterior.path)}
    elif isinstance(posterior, ParticlePosterior):
        kind = "samples" if isinstance(posterior, SamplePosterior) else "particles"
        arrays = {"particles": _state(posterior.particles)}
        extra = {}
    else:
        raise TypeError(
            "`posterior` must be a posterior returned by bdl.fit (ParticlePosterior, "
            f"SamplePosterior, LaplacePosterior or VIPosterior); got {type(posterior).__name__}."
        )
    dropped: list[str] = []
    info = _encode(dict(posterior.info), "info", dropped)
    meta = {
        "format": _FORMAT,
        "kind": kind,
        "method": posterior.method,
        "input_shape": list(posterior.input_shape),
        "likelihood": repr(posterior.likelihood),
        **extra,
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
    (the arrays are restored into the structure of the model's own parameters)."""
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
    if fmt != _FORMAT:
        raise ValueError(
            f"`path` {str(path)!r} holds format {fmt!r}; expected {_FORMAT!r} (or "
            f"{_FORMAT_V1!r})."
        )
    _check_likelihood(path, meta, likelihood)
    kind = meta.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"`path` {str(path)!r} holds an unknown posterior kind {kind!r}; "
                         f"expected one of {list(_KINDS)}.")
    arrays = _read_msgpack(path, _ARRAYS)
    info = _decode(_read_msgpack(path, _INFO))
    input_shape = tuple(int(d) for d in meta["input_shape"])
    network = as_network(model, jnp.zeros((1, *input_shape), jnp.float32))
    if kind in ("particles", "samples"):
        if info.get("random_prior_scale"):
            network = with_random_prior(network, float(info["random_prior_scale"]))
        particles = _restore_particles(path, network, likelihood, arrays["particles"])
        cls = SamplePosterior if kind == "samples" else ParticlePosterior
        return cls(meta["method"], network, likelihood, particles, info, input_shape)
    template = network.init(jax.random.key(0))
    if kind == "vi":
        sub_path = tuple(meta["path"])
        sub = _get(template, sub_path)
        q = MeanField(_restore(path, sub, arrays["loc"], "variational means"),
                      _restore(path, sub, arrays["raw_scale"], "variational scales"))
        lik_params = _restore(path, likelihood.init_params(), arrays["lik_params"],
                              "likelihood parameters")
        fixed = ({} if not sub_path else
                 _restore(path, template, arrays["fixed"], "network parameters"))
        return VIPosterior(meta["method"], network, likelihood, q, lik_params, fixed, sub_path,
                           info, input_shape)
    # laplace
    net_params = _restore(path, template, arrays["net_params"], "network parameters")
    subnet = build_subnet(network, net_params, jnp.zeros((1, *input_shape), jnp.float32),
                          meta["subset"])
    theta = _decode(arrays["theta"], as_jax=True)
    if theta.shape != (subnet.num_params,):
        raise ValueError(
            f"`path` {str(path)!r}: the saved Laplace posterior covers {theta.shape[0]} "
            f"parameters but `model` has {subnet.num_params} under subset={meta['subset']!r}; "
            "was it saved with a different model?"
        )
    return LaplacePosterior(
        meta["method"], network, likelihood, net_params, subnet, meta["hessian"], theta,
        _decode(arrays["curvature"], as_jax=True), _decode(arrays["terms"], as_jax=True),
        _decode(arrays["hyper"], as_jax=True), _decode(arrays["factor"], as_jax=True), info,
        input_shape,
    )


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


def _load_v1(path: Path, meta: dict, model: Any, likelihood: Likelihood) -> ParticlePosterior:
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
    particles = _restore_particles(path, network, likelihood, raw)
    return ParticlePosterior(meta["method"], network, likelihood, particles, meta["info"],
                             tuple(meta["input_shape"]))


# ---------------------------------------------------------------------------------- arrays
def _state(tree: Any) -> Any:
    """A parameter tree as a state dict (string keys, numpy leaves)."""
    return jax.tree.map(np.asarray, serialization.to_state_dict(jax.device_get(tree)))


def _restore(path: Path, template: Any, state: Any, what: str) -> Any:
    """``state`` restored into the structure of ``template`` (shapes checked)."""
    try:
        tree = serialization.from_state_dict(template, state)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"`path` {str(path)!r}: the saved {what} do not match the structure "
                         f"of `model`'s ({err}).") from err
    want = [jnp.shape(a) for a in jax.tree.leaves(template)]
    got = [np.shape(a) for a in jax.tree.leaves(tree)]
    if want != got:
        raise ValueError(f"`path` {str(path)!r}: the saved {what} have shapes {got}; `model` "
                         f"has {want}. Was it saved with a different model?")
    return jax.tree.map(jnp.asarray, tree)


def _restore_particles(path: Path, network, likelihood: Likelihood, state: Any) -> Any:
    """Particles ``{"net", "lik"}`` with a leading particle axis, into the model's structure."""
    leaves = jax.tree.leaves(state)
    if not leaves:
        raise ValueError(f"`path` {str(path)!r} holds no particle arrays.")
    leading = int(np.shape(leaves[0])[0])
    template = {"net": network.init(jax.random.key(0)), "lik": likelihood.init_params()}
    if network.has_state:
        template["state"] = network.init_state(jax.random.key(0))
    template = jax.tree.map(lambda a: jnp.zeros((leading, *jnp.shape(a))), template)
    return _restore(path, template, state, "particles")


def _read_msgpack(path: Path, name: str) -> Any:
    file = path / name
    if not file.is_file():
        raise FileNotFoundError(f"`path` {str(path)!r} lacks {name} (an incomplete save?).")
    return serialization.msgpack_restore(file.read_bytes())


def _json_path(keys: tuple) -> list:
    for k in keys:
        if not isinstance(k, (str, int)) or isinstance(k, bool):
            raise TypeError(f"Cannot save a parameter path holding the key {k!r} "
                            f"({type(k).__name__}); only str and int keys are supported.")
    return list(keys)


def _get(tree: Any, keys: tuple) -> Any:
    for k in keys:
        tree = tree[k]
    return tree


# ------------------------------------------------------------------- typed plain-data trees
class _Unencodable(TypeError):
    pass


_TAG = "__bdl__"


def _encode(x: Any, where: str = "", dropped: list[str] | None = None) -> Any:
    """``x`` as msgpack-able dicts that keep tuples, lists, None, non-string dict keys and the
    named tuples of ``_NAMED``. With ``dropped`` (a list), dict entries that cannot be encoded
    are left out and their paths appended; without, they raise ``_Unencodable``."""
    if x is None:
        return {_TAG: "none"}
    if isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, np.generic) and not isinstance(x, (np.object_, np.void)):
        return x
    if isinstance(x, (np.ndarray, jax.Array)):
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            raise _Unencodable("a PRNG key array")
        arr = np.asarray(jax.device_get(x))
        if arr.dtype.hasobject or arr.dtype.isalignedstruct:
            raise _Unencodable(f"an array of dtype {arr.dtype}")
        return arr
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        name = type(x).__name__
        if _NAMED.get(name) is not type(x):
            raise _Unencodable(f"named tuple {name}")
        return {_TAG: "named", "name": name,
                "fields": {f: _encode(v, f"{where}.{f}", dropped=None)
                           for f, v in zip(x._fields, x, strict=True)}}
    if isinstance(x, (tuple, list)):
        return {_TAG: "tuple" if isinstance(x, tuple) else "list",
                "items": {str(i): _encode(v, f"{where}[{i}]", dropped=None)
                          for i, v in enumerate(x)}}
    if isinstance(x, dict):
        keys, values = [], {}
        for k, v in x.items():
            here = f"{where}[{k!r}]"
            try:
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise _Unencodable(f"a dict key of type {type(k).__name__}")
                value = _encode(v, here, dropped)
            except _Unencodable as err:
                if dropped is None:
                    raise
                dropped.append(f"{here}: {err}")
                continue
            values[str(len(keys))] = value
            keys.append(k)
        return {_TAG: "dict", "keys": keys, "values": values}
    raise _Unencodable(f"a {type(x).__name__}")


def _decode(x: Any, as_jax: bool = False) -> Any:
    """The inverse of ``_encode`` (arrays as ``jax.Array`` with ``as_jax``, else numpy)."""
    if isinstance(x, np.ndarray):
        return jnp.asarray(x) if as_jax else x
    if not isinstance(x, dict):
        return x
    tag = x.get(_TAG)
    if tag == "none":
        return None
    if tag == "named":
        cls = _NAMED[x["name"]]
        return cls(**{f: _decode(v, as_jax) for f, v in x["fields"].items()})
    if tag in ("tuple", "list"):
        items = [_decode(x["items"][str(i)], as_jax) for i in range(len(x["items"]))]
        return tuple(items) if tag == "tuple" else items
    if tag == "dict":
        return {k: _decode(x["values"][str(i)], as_jax) for i, k in enumerate(x["keys"])}
    raise ValueError(f"Unknown entry in a saved posterior: {sorted(x)}.")
