"""The log-joint objective shared by every optimising method."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from bdl.likelihoods import Likelihood
from bdl.models import Network, Params
from bdl.priors import Prior
from bdl.training._data import Batch


def log_joint_loss(
    network: Network,
    likelihood: Likelihood,
    prior: Prior,
    num_data: int,
    *,
    num_effective: float | None = None,
) -> Callable[[Params, Batch], jax.Array]:
    """Negative log-joint per data point, estimated on a minibatch.

    ``params = {"net": network params, "lik": likelihood params}``. Minibatches of B examples
    are drawn from ``num_data`` examples with per-example weights ``w`` (bootstrap counts, a
    0/1 mask that holds out validation examples; ones by default). The loss is
    ``-((num_data / B) * sum_i w_i log p(y_i | x_i, net, lik) + log p(net)) / num_effective``:
    an unbiased estimate of the weighted full-data negative log-joint divided by the effective
    number of training examples ``num_effective`` (default ``num_data``), so learning rates
    do not depend on N.
    """
    scale = num_effective if num_effective is not None else num_data

    def loss(params: Params, batch: Batch) -> jax.Array:
        f = network.apply(params["net"], batch["x"])
        ll = likelihood.log_likelihood(f, batch["y"], params["lik"])
        b = batch["x"].shape[0]
        log_joint = (num_data / b) * jnp.sum(batch["w"] * ll) + prior.log_prob(params["net"])
        return -log_joint / scale

    return loss


def mean_nll(network: Network, likelihood: Likelihood) -> Callable[[Params, Batch], jax.Array]:
    """Weighted mean negative log-likelihood of a batch, ``-sum(w * ll) / sum(w)`` (the
    validation criterion; with a 0/1 mask ``w`` it scores the held-out examples only)."""

    def nll(params: Params, batch: Batch) -> jax.Array:
        f = network.apply(params["net"], batch["x"])
        ll = likelihood.log_likelihood(f, batch["y"], params["lik"])
        return -jnp.sum(batch["w"] * ll) / jnp.sum(batch["w"])

    return nll
