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

    For a model with state or randomness (``network.has_state`` / ``network.stochastic``)
    the loss is ``loss(params, batch, key)`` on the training-mode pass (``params["state"]``
    holds the model state), and returns ``(loss, new_state)`` when the model has state: pass
    ``loss_takes_key=True, stateful=network.has_state`` to ``build_epoch``.
    """
    scale = num_effective if num_effective is not None else num_data

    def objective(params: Params, batch: Batch, f: jax.Array) -> jax.Array:
        ll = likelihood.log_likelihood(f, batch["y"], params["lik"])
        b = batch["x"].shape[0]
        log_joint = (num_data / b) * jnp.sum(batch["w"] * ll) + prior.log_prob(params["net"])
        return -log_joint / scale

    if not (network.has_state or network.stochastic):
        return lambda params, batch: objective(params, batch, network.apply(params["net"],
                                                                             batch["x"]))

    def loss(params: Params, batch: Batch, key: jax.Array):
        # the training-mode pass: dropout on (from ``key``), BatchNorm on the batch
        state = jax.lax.stop_gradient(params.get("state", {}))
        f, new_state = network.forward(params["net"], state, batch["x"], key=key, train=True)
        value = objective(params, batch, f)
        return (value, new_state) if network.has_state else value

    return loss


def mean_nll(network: Network, likelihood: Likelihood) -> Callable[[Params, Batch], jax.Array]:
    """Weighted mean negative log-likelihood of a batch, ``-sum(w * ll) / sum(w)`` (the
    validation criterion; with a 0/1 mask ``w`` it scores the held-out examples only)."""

    def nll(params: Params, batch: Batch) -> jax.Array:
        f = network.apply(params["net"], batch["x"], params.get("state"))
        ll = likelihood.log_likelihood(f, batch["y"], params["lik"])
        return -jnp.sum(batch["w"] * ll) / jnp.sum(batch["w"])

    return nll
