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
    network: Network, likelihood: Likelihood, prior: Prior, num_data: int
) -> Callable[[Params, Batch], jax.Array]:
    """Negative log-joint per data point, estimated on a minibatch.

    ``params = {"net": network params, "lik": likelihood params}``. With B examples in the
    batch and per-example weights ``w`` (bootstrap counts; ones by default) the loss is
    ``-((N / B) * sum_i w_i log p(y_i | x_i, net, lik) + log p(net)) / N``: an unbiased estimate
    of the full-data negative log-joint divided by N, so learning rates do not depend on N.
    """

    def loss(params: Params, batch: Batch) -> jax.Array:
        f = network.apply(params["net"], batch["x"])
        ll = likelihood.log_likelihood(f, batch["y"], params["lik"])
        b = batch["x"].shape[0]
        return -((num_data / b) * jnp.sum(batch["w"] * ll) + prior.log_prob(params["net"])) / num_data

    return loss


def mean_nll(network: Network, likelihood: Likelihood) -> Callable[[Params, Batch], jax.Array]:
    """Mean negative log-likelihood of a batch (the validation criterion)."""

    def nll(params: Params, batch: Batch) -> jax.Array:
        f = network.apply(params["net"], batch["x"])
        return -jnp.mean(likelihood.log_likelihood(f, batch["y"], params["lik"]))

    return nll
