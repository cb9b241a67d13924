"""Saving and loading posteriors as plain pytrees (msgpack), without pickling code."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import serialization

from bdl._host import atomic_write
from bdl.approximators._ensemble import with_random_prior
from bdl.approximators._posterior import ParticlePosterior
from bdl.likelihoods import Likelihood
from bdl.models import as_network

_FORMAT = "bdl-particles-v1"


def save(posterior: ParticlePosterior, path: str | os.PathLike) -> Path:
    """Write ``posterior``'s parameters and metadata to ``path`` (a directory).

    The model and likelihood are code, not data: ``load`` takes them again, as
    ``torch.load_state_dict`` does. Writes are atomic (temp file, then rename).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": _FORMAT,
        "method": posterior.method,
        "input_shape": list(posterior.input_shape),
        "likelihood": repr(posterior.likelihood),
        "info": {k: v for k, v in posterior.info.items() if _is_jsonable(v)},
    }
    atomic_write(path / "particles.msgpack", serialization.to_bytes(posterior.particles))
    atomic_write(path / "meta.json", json.dumps(meta, indent=2).encode())
    return path


def load(path: str | os.PathLike, model: Any, likelihood: Likelihood) -> ParticlePosterior:
    """Read a posterior written by ``save``; ``model``/``likelihood`` as given to ``fit``."""
    path = Path(path)
    meta_file, data_file = path / "meta.json", path / "particles.msgpack"
    if not meta_file.exists() or not data_file.exists():
        raise FileNotFoundError(
            f"`path` {str(path)!r} does not hold a saved posterior (expects meta.json and "
            "particles.msgpack written by bdl.approximators.save)."
        )
    meta = json.loads(meta_file.read_text())
    if meta.get("format") != _FORMAT:
        raise ValueError(f"`path` holds format {meta.get('format')!r}; expected {_FORMAT!r}.")
    network = as_network(model, jnp.zeros((1, *meta["input_shape"]), jnp.float32))
    if meta["info"].get("random_prior_scale"):
        network = with_random_prior(network, float(meta["info"]["random_prior_scale"]))
    raw = serialization.msgpack_restore(data_file.read_bytes())
    template = {"net": network.init(jax.random.key(0)), "lik": likelihood.init_params()}
    # restore into the structure of the model's own parameters (keeps int keys, dict order)
    leading = jax.tree.leaves(raw)[0].shape[0]
    template = jax.tree.map(lambda a: jnp.zeros((leading, *jnp.shape(a))), template)
    particles = jax.tree.map(jnp.asarray, serialization.from_state_dict(template, raw))
    return ParticlePosterior(meta["method"], network, likelihood, particles, meta["info"],
                             tuple(meta["input_shape"]))


def _is_jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except TypeError:
        return False
