"""Maximum a posteriori: one network, the mode of the log-joint."""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import Mesh

from bdl.approximators._method import options_from_kwargs
from bdl.approximators._optimise import batch_setups, optimise_particles
from bdl.approximators._options import TrainOptions
from bdl.approximators._posterior import ParticlePosterior, split_seeds
from bdl.likelihoods import Likelihood
from bdl.models import Network
from bdl.training import Batch


def fit_map(
    key: jax.Array, network: Network, likelihood: Likelihood, data: Batch,
    options: TrainOptions | None = None, **kwargs: Any,
) -> ParticlePosterior:
    """MAP estimate with ``options`` (a ``TrainOptions``; or its fields as keywords).
    Returns a one-particle posterior whose predictive is a single Gaussian (regression) or
    categorical (classification)."""
    return fit_map_seeds(key[None], network, likelihood, data, options, **kwargs)[0]


def fit_map_seeds(
    keys: jax.Array,
    network: Network,
    likelihood: Likelihood,
    data: Batch,
    options: TrainOptions | None = None,
    *,
    mesh: Mesh | None = None,
    **kwargs: Any,
) -> list[ParticlePosterior]:
    """MAP for every seed key in ``keys`` ``[S]`` in one compiled program; posterior ``s``
    equals ``fit_map(keys[s], ...)``."""
    train = options if options is not None else options_from_kwargs(TrainOptions, kwargs, "map")
    setup = batch_setups(keys, network, data["x"].shape[0], train)
    particles, history = optimise_particles(network, likelihood, data, train, setup, mesh=mesh,
                                            description="map")
    return split_seeds("map", network, likelihood, particles, history, keys.shape[0],
                       tuple(data["x"].shape[1:]), {})
