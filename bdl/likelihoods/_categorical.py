"""Categorical likelihood over class logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bdl.likelihoods._base import Likelihood, LikParams
from bdl.predictive import Predictive


class Categorical(Likelihood):
    """y ~ Categorical(softmax(f(x))); outputs are ``[N, C]`` logits, targets int labels ``[N]``."""

    task = "classification"

    def output_size(self, target_dim: int) -> None:
        return None

    def log_likelihood(self, f: jax.Array, y: jax.Array, lik_params: LikParams) -> jax.Array:
        logp = jax.nn.log_softmax(f, axis=-1)
        return jnp.take_along_axis(logp, y.astype(jnp.int32)[..., None], axis=-1)[..., 0]

    def predictive(self, f: jax.Array, lik_params: LikParams) -> Predictive:
        return Predictive.categorical(logits=f)

    def validate_targets(self, y: jax.Array, out_size: int) -> None:
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"`y` must be integer labels of shape [N]; got shape {y.shape}.")
        if y.dtype.kind not in "iu":
            raise ValueError(f"`y` must hold integer class labels; got dtype {y.dtype}.")
        if out_size < 2:
            raise ValueError(f"`model` must output >= 2 logits for classification; got {out_size}.")
        if y.size and (y.min() < 0 or y.max() >= out_size):
            raise ValueError(
                f"`y` holds labels in [{y.min()}, {y.max()}] but the model outputs {out_size} "
                f"logits (labels must lie in [0, {out_size - 1}])."
            )

    def __repr__(self) -> str:
        return "Categorical()"
