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
import jax.numpy as jnp
import optax

from bdl._validation import check_positive
from bdl.approximators._optimise import optimise_particles
from bdl.approximators._options import split_options
from bdl.approximators._posterior import ParticlePosterior
from bdl.likelihoods import Likelihood
from bdl.models import Network
from bdl.training import Batch

_OWN = ("num_members", "bootstrap", "random_prior_scale")


def fit_ensemble(
    key: jax.Array, network: Network, likelihood: Likelihood, data: Batch, **options: Any
) -> ParticlePosterior:
    """Deep ensemble. Options: ``num_members`` (default 5), ``bootstrap`` (False),
    ``random_prior_scale`` (0.0) and every ``TrainOptions`` field. The predictive is the
    equally weighted mixture of the members' predictives."""
    train, own = split_options(options, _OWN, "ensemble")
    m = int(own.get("num_members", 5))
    if m < 1:
        raise ValueError(f"`num_members` must be >= 1; got {m}.")
    prior_scale = float(own.get("random_prior_scale", 0.0))
    if prior_scale:
        check_positive("random_prior_scale", prior_scale)
    if not network.reinitialisable and train.init_params is None:
        raise ValueError(
            "`model` is an already-built NNX module, which cannot be re-initialised to give "
            "distinct ensemble members; pass a factory `lambda rngs: Model(..., rngs=rngs)`."
        )

    k_init, k_boot, k_train = jax.random.split(key, 3)
    if prior_scale:
        network = with_random_prior(network, prior_scale)
        train = dataclasses.replace(train, optimizer=_freeze_anchor(train.resolved_optimizer()))
    init = jax.vmap(network.init)(jax.random.split(k_init, m))

    weights = None
    if own.get("bootstrap", False):
        def weights(n):
            draws = jax.random.randint(k_boot, (m, n), 0, n)
            return jax.vmap(lambda d: jnp.bincount(d, length=n))(draws).astype(jnp.float32)

    particles, history = optimise_particles(
        k_train, network, likelihood, data, train, init,
        example_weights=weights, description=f"ensemble x{m}",
    )
    info = {"history": history, "num_members": m, "bootstrap": bool(own.get("bootstrap", False)),
            "random_prior_scale": prior_scale}
    return ParticlePosterior("ensemble", network, likelihood, particles, info,
                             tuple(data["x"].shape[1:]))


def with_random_prior(network: Network, scale: float) -> Network:
    """Network whose params are ``{"trainable", "anchor"}``; output = f(trainable) +
    scale * f(anchor), with no gradient reaching the anchor."""

    def init(key):
        k_train, k_anchor = jax.random.split(key)
        return {"trainable": network.init(k_train), "anchor": network.init(k_anchor)}

    def apply(params, x):
        anchor = jax.lax.stop_gradient(params["anchor"])
        return network.apply(params["trainable"], x) + scale * network.apply(anchor, x)

    return Network(init, apply, network.reinitialisable)


def _freeze_anchor(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """``optimizer`` on the trainable network and the likelihood; zero updates for the anchor."""

    def labels(params):
        frozen = {"trainable": "train", "anchor": "freeze"}
        net = {k: jax.tree.map(lambda _, lab=lab: lab, v) for k, lab in frozen.items()
               for v in [params["net"][k]]}
        return {"net": net, "lik": jax.tree.map(lambda _: "train", params["lik"])}

    return optax.multi_transform({"train": optimizer, "freeze": optax.set_to_zero()}, labels)
