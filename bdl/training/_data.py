"""Checking and preparing the ``(x, y)`` data every approximator takes."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bdl._validation import check_finite
from bdl.likelihoods import Likelihood
from bdl.models import Network

Batch = dict[str, jax.Array]  # {"x": [N, ...], "y": [N, ...], "w": [N]}


def as_key(key: Any) -> jax.Array:
    """A typed PRNG key from ``key`` (typed key, raw uint32 key, or an int seed)."""
    if key is None:
        raise ValueError("`key` is required: pass key=jax.random.key(seed).")
    if isinstance(key, int):
        return jax.random.key(key)
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if key.dtype == jnp.uint32 and key.shape[-1:] == (2,):
        return jax.random.wrap_key_data(key)
    raise ValueError(f"`key` must be a jax.random.key; got dtype {key.dtype}, shape {key.shape}.")


def check_inputs(x: Any, name: str = "x") -> jax.Array:
    """``x`` as a float array ``[N, ...]`` with N >= 1 and no NaN/inf."""
    x = jnp.asarray(x)
    if x.ndim == 0:
        raise ValueError(f"`{name}` must have a leading example axis; got a scalar.")
    if x.shape[0] == 0:
        raise ValueError(f"`{name}` is empty (0 examples).")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    check_finite(name, x)
    return x


def prepare_data(data: Any, likelihood: Likelihood, network: Network, key: jax.Array) -> Batch:
    """Validate ``data = (x, y)`` against the model and likelihood; return a batch dict.

    Raises ``ValueError`` naming the argument for: a ``data`` that is not a pair, empty data,
    x/y length mismatch, NaN/inf, targets that do not fit the likelihood (dtype, label range),
    and a model whose output size does not fit the likelihood.
    """
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValueError("`data` must be a pair (x, y) of arrays with the same first axis.")
    x = check_inputs(data[0], "x")
    y = jnp.asarray(data[1])
    if y.ndim == 0 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"`x` and `y` must have the same number of examples; got x {x.shape}, y {y.shape}."
        )
    if jnp.issubdtype(y.dtype, jnp.floating):
        check_finite("y", y)
    out = jax.eval_shape(lambda k: network.forward(network.init(k), network.init_state(k),
                                                   x[:1])[0], key)
    if len(out.shape) != 2:
        raise ValueError(f"`model` must output [N, out] arrays; got shape {out.shape} for x[:1].")
    likelihood.validate_targets(np.asarray(y) if not jnp.issubdtype(y.dtype, jnp.floating) else y,
                                out.shape[-1])
    if jnp.issubdtype(y.dtype, jnp.integer):
        y = y.astype(jnp.int32)
    return {"x": x, "y": y, "w": jnp.ones(x.shape[0], jnp.float32)}


def split_validation(batch: Batch, fraction: float, key: jax.Array) -> tuple[Batch, Batch | None]:
    """Hold out a random ``fraction`` of the examples for validation (None when 0)."""
    if fraction <= 0.0:
        return batch, None
    if fraction >= 1.0:
        raise ValueError(f"`validation_fraction` must lie in [0, 1); got {fraction}.")
    n = batch["x"].shape[0]
    n_val = max(1, int(round(fraction * n)))
    if n_val >= n:
        raise ValueError(f"`validation_fraction`={fraction} leaves no training data ({n} examples).")
    perm = jax.random.permutation(key, n)
    take = lambda idx: jax.tree.map(lambda a: a[idx], batch)
    return take(perm[n_val:]), take(perm[:n_val])
