"""Posterior state as plain data: the helpers every ``Posterior.to_state`` / ``from_state``
and save/load share (no posterior class is imported here).

- ``as_state_dict`` / ``restore``: a parameter tree as a state dict (string keys, numpy
  leaves) and back into the structure of a template (the model's own parameters), with the
  shapes checked and a ``ValueError`` naming what does not fit.
- ``encode`` / ``decode``: nested dicts / lists / tuples / None / named tuples as msgpack-able
  dicts. Named tuples must be registered by name with ``register_named_tuple`` (restored by
  name, never by import path).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

_NAMED: dict[str, type] = {}


def register_named_tuple(cls: type) -> type:
    """Let ``encode``/``decode`` carry the named tuple class ``cls`` (by its name)."""
    if _NAMED.get(cls.__name__, cls) is not cls:
        raise ValueError(f"Another named tuple is registered as {cls.__name__!r}.")
    _NAMED[cls.__name__] = cls
    return cls


def as_state_dict(tree: Any) -> Any:
    """A parameter tree as a state dict (string keys, numpy leaves)."""
    return jax.tree.map(np.asarray, serialization.to_state_dict(jax.device_get(tree)))


def restore(where: str, template: Any, state: Any, what: str) -> Any:
    """``state`` restored into the structure of ``template`` (shapes checked)."""
    try:
        tree = serialization.from_state_dict(template, state)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{where}: the saved {what} do not match the structure "
                         f"of `model`'s ({err}).") from err
    want = [jnp.shape(a) for a in jax.tree.leaves(template)]
    got = [np.shape(a) for a in jax.tree.leaves(tree)]
    if want != got:
        raise ValueError(f"{where}: the saved {what} have shapes {got}; `model` "
                         f"has {want}. Was it saved with a different model?")
    return jax.tree.map(jnp.asarray, tree)


def json_path(keys: tuple) -> list:
    for k in keys:
        if not isinstance(k, (str, int)) or isinstance(k, bool):
            raise TypeError(f"Cannot save a parameter path holding the key {k!r} "
                            f"({type(k).__name__}); only str and int keys are supported.")
    return list(keys)


def get_path(tree: Any, keys: tuple) -> Any:
    for k in keys:
        tree = tree[k]
    return tree


class _Unencodable(TypeError):
    pass


_TAG = "__bdl__"


def encode(x: Any, where: str = "", dropped: list[str] | None = None) -> Any:
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
                "fields": {f: encode(v, f"{where}.{f}", dropped=None)
                           for f, v in zip(x._fields, x, strict=True)}}
    if isinstance(x, (tuple, list)):
        return {_TAG: "tuple" if isinstance(x, tuple) else "list",
                "items": {str(i): encode(v, f"{where}[{i}]", dropped=None)
                          for i, v in enumerate(x)}}
    if isinstance(x, dict):
        keys, values = [], {}
        for k, v in x.items():
            here = f"{where}[{k!r}]"
            try:
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise _Unencodable(f"a dict key of type {type(k).__name__}")
                value = encode(v, here, dropped)
            except _Unencodable as err:
                if dropped is None:
                    raise
                dropped.append(f"{here}: {err}")
                continue
            values[str(len(keys))] = value
            keys.append(k)
        return {_TAG: "dict", "keys": keys, "values": values}
    raise _Unencodable(f"a {type(x).__name__}")


def is_encoded(x: Any) -> bool:
    """Whether ``x`` is a tagged entry written by ``encode`` (not a plain state dict)."""
    return isinstance(x, dict) and _TAG in x


def decode(x: Any, as_jax: bool = False) -> Any:
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
        return cls(**{f: decode(v, as_jax) for f, v in x["fields"].items()})
    if tag in ("tuple", "list"):
        items = [decode(x["items"][str(i)], as_jax) for i in range(len(x["items"]))]
        return tuple(items) if tag == "tuple" else items
    if tag == "dict":
        return {k: decode(x["values"][str(i)], as_jax) for i, k in enumerate(x["keys"])}
    raise ValueError(f"Unknown entry in a saved posterior: {sorted(x)}.")
