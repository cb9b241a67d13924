"""Deep ensembles (Lakshminarayanan et al. 2017): M networks trained in one vmapped program.

Variants: ``bootstrap=True`` trains each member on a bootstrap resample of the data (as
per-example multiplicity weights, so shapes stay static under ``vmap``);
``random_prior_scale > 0`` adds to each member a fixed, randomly initialised copy of the
network scaled by that factor (randomised prior functions, Osband et al. 2018).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import optax
from jax.sharding import Mesh

from bdl._cache import memo
from bdl._validation import check_positive
from bdl.approximators._method import options_from_kwargs
from bdl.approximators._optimise import batch_setups, optimise_particles
from bdl.approximators._options import TrainOptions
from bdl.approximators._posterior import ParticlePosterior, split_seeds
from bdl.likelihoods import Likelihood
from bdl.models import Network, with_shuffled_init
from bdl.training import Batch


@dataclasses.dataclass(frozen=True)
class EnsembleOptions:
    """Options of ``"ensemble"``.

    Attributes:
      train: how each member is trained (``TrainOptions``; its fields are keywords too).
      num_members: M networks.
      bootstrap: train each member on a bootstrap resample of the data.
      random_prior_scale: > 0 adds a fixed random copy of the network scaled by it to each
        member (randomised prior functions).
    """

    train: TrainOptions = dataclasses.field(default_factory=TrainOptions)
    num_members: int = 5
    bootstrap: bool = False
    random_prior_scale: float = 0.0

    def __post_init__(self):
        if int(self.num_members) < 1:
            raise ValueError(f"`num_members` must be >= 1; got {self.num_members}.")
        if self.random_prior_scale:
            check_positive("random_prior_scale", self.random_prior_scale)


def fit_ensemble(
    key: jax.Array, network: Network, likelihood: Likelihood, data: Batch,
    options: EnsembleOptions | None = None, **kwargs: Any,
) -> ParticlePosterior:
    """Deep ensemble with ``options`` (an ``EnsembleOptions``, or its fields and those of
    ``TrainOptions`` as keywords). The predictive is the equally weighted mixture of the
    members' predictives."""
    return fit_ensemble_seeds(key[None], network, likelihood, data, options, **kwargs)[0]


def fit_ensemble_seeds(
    keys: jax.Array,
    network: Network,
    likelihood: Likelihood,
    data: Batch,
    options: EnsembleOptions | None = None,
    *,
    mesh: Mesh | None = None,
    **kwargs: Any,
) -> list[ParticlePosterior]:
    """A deep ensemble for every seed key in ``keys`` ``[S]``: all S x M members in one
    compiled program; posterior ``s`` equals ``fit_ensemble(keys[s], ...)``."""
    opts = options if options is not None else options_from_kwargs(EnsembleOptions, kwargs,
                                                                   "ensemble")
    train, m = opts.train, int(opts.num_members)
    # an already-built NNX module: members start from random permutations of its weights
    network = with_shuffled_init(network)
    if opts.random_prior_scale:
        network = with_random_prior(network, opts.random_prior_scale)
        train = dataclasses.replace(
            train, optimizer=_freeze_anchor(train.resolved_optimizer(data["x"].shape[0])))

    setup = batch_setups(keys, network, data["x"].shape[0], train, m, opts.bootstrap)
    particles, history = optimise_particles(network, likelihood, data, train, setup, mesh=mesh,
                                            description=f"ensemble x{m}")
    info = {"num_members": m, "bootstrap": bool(opts.bootstrap),
            "random_prior_scale": float(opts.random_prior_scale)}
    return split_seeds("ensemble", network, likelihood, particles, history, keys.shape[0],
                       tuple(data["x"].shape[1:]), info)


def with_random_prior(network: Network, scale: float) -> Network:
    """Network whose params are ``{"trainable", "anchor"}``; output = f(trainable) +
    scale * f(anchor), with no gradient reaching the anchor."""

    def init(key):
        k_train, k_anchor = jax.random.split(key)
        return {"trainable": network.init(k_train), "anchor": network.init(k_anchor)}

    def forward(params, state, x, *, key=None, train=False):
        anchor = jax.lax.stop_gradient(params["anchor"])
        out, state = network.forward(params["trainable"], state, x, key=key, train=train)
        return out + scale * network.forward(anchor, state, x)[0], state

    return network._replace(init=init, forward=memo(("random_prior", network.forward, scale),
                                                    lambda: forward))


def _freeze_anchor(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """``optimizer`` on the trainable network and the likelihood; zero updates for the anchor."""

    def labels(params):
        net = {
            "trainable": jax.tree.map(lambda _: "train", params["net"]["trainable"]),
            "anchor": jax.tree.map(lambda _: "freeze", params["net"]["anchor"]),
        }
        return {"net": net, "lik": jax.tree.map(lambda _: "train", params["lik"])}

    return optax.multi_transform({"train": optimizer, "freeze": optax.set_to_zero()}, labels)
