"""Maximum a posteriori: one network, the mode of the log-joint."""

from __future__ import annotations

from typing import Any

import jax

from bdl.approximators._optimise import optimise_particles
from bdl.approximators._options import split_options
from bdl.approximators._posterior import ParticlePosterior
from bdl.likelihoods import Likelihood
from bdl.models import Network
from bdl.training import Batch


def fit_map(
    key: jax.Array, network: Network, likelihood: Likelihood, data: Batch, **options: Any
) -> ParticlePosterior:
    """MAP estimate. Options: those of ``TrainOptions`` (epochs, batch_size, learning_rate,
    optimizer, prior, validation_fraction, patience, chunk_epochs, progress, checkpoint_dir,
    init_params). Returns a one-particle posterior whose predictive is a single Gaussian
    (regression) or categorical (classification)."""
    train, _ = split_options(options, (), "map")
    k_init, k_train = jax.random.split(key)
    init = jax.tree.map(lambda a: a[None], network.init(k_init))
    particles, history = optimise_particles(
        k_train, network, likelihood, data, train, init, description="map"
    )
    return ParticlePosterior("map", network, likelihood, particles, {"history": history},
                             tuple(data["x"].shape[1:]))
