"""Gaussian likelihood with homoscedastic (learned or fixed) or heteroscedastic noise."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bdl._validation import check_choice, check_positive
from bdl.likelihoods._base import Likelihood, LikParams
from bdl.predictive import Predictive

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


class Gaussian(Likelihood):
    """y ~ N(mean(x), scale(x)^2).

    Args:
      noise: ``"homoscedastic"``: one scale per output column, a likelihood parameter
        (``lik_params["log_scale"]``, learned unless ``scale`` is given);
        ``"heteroscedastic"``: the network outputs a mean and a raw scale per target column
        (``[N, 2D]``: means first), scale = softplus(raw) + ``min_scale``.
      scale: fixed noise standard deviation (homoscedastic only); ``None`` learns it.
      init_scale: starting value of the learned homoscedastic scale.
      min_scale: floor of the heteroscedastic scale (keeps the likelihood bounded).
    """

    task = "regression"

    def __init__(
        self,
        noise: str = "homoscedastic",
        *,
        scale: float | None = None,
        init_scale: float = 1.0,
        min_scale: float = 1e-3,
    ):
        check_choice("noise", noise, ("homoscedastic", "heteroscedastic"))
        if scale is not None:
            if noise != "homoscedastic":
                raise ValueError("`scale` can only be fixed for homoscedastic noise.")
            check_positive("scale", scale)
        check_positive("init_scale", init_scale)
        check_positive("min_scale", min_scale)
        self.noise = noise
        self.scale = scale
        self.init_scale = float(init_scale)
        self.min_scale = float(min_scale)

    @property
    def learns_scale(self) -> bool:
        return self.noise == "homoscedastic" and self.scale is None

    def init_params(self) -> LikParams:
        if self.learns_scale:
            return {"log_scale": jnp.asarray(np.log(self.init_scale), jnp.float32)}
        return {}

    def output_size(self, target_dim: int) -> int:
        return target_dim * (2 if self.noise == "heteroscedastic" else 1)

    def mean_and_scale(self, f: jax.Array, lik_params: LikParams) -> tuple[jax.Array, jax.Array]:
        """Mean and noise scale, each ``[..., N, D]``, from outputs ``f`` ``[..., N, out]``."""
        if self.noise == "heteroscedastic":
            d = f.shape[-1] // 2
            return f[..., :d], jax.nn.softplus(f[..., d:]) + self.min_scale
        if self.scale is not None:
            return f, jnp.full_like(f, self.scale)
        log_scale = jnp.asarray(lik_params["log_scale"])
        return f, jnp.broadcast_to(jnp.exp(log_scale)[..., None, None], f.shape)

    def log_likelihood(self, f: jax.Array, y: jax.Array, lik_params: LikParams) -> jax.Array:
        mean, scale = self.mean_and_scale(f, lik_params)
        y = y.reshape(mean.shape)
        z = (y - mean) / scale
        return jnp.sum(-0.5 * z**2 - jnp.log(scale) - _LOG_SQRT_2PI, axis=-1)

    def predictive(self, f: jax.Array, lik_params: LikParams) -> Predictive:
        mean, scale = self.mean_and_scale(f, lik_params)
        if mean.shape[-1] == 1:
            mean, scale = mean[..., 0], scale[..., 0]
        return Predictive.gaussian_mixture(mean, scale)

    def validate_targets(self, y: jax.Array, out_size: int) -> None:
        if not jnp.issubdtype(jnp.asarray(y).dtype, jnp.floating):
            raise ValueError(f"`y` must hold real-valued targets for a Gaussian; got {y.dtype}.")
        target_dim = 1 if y.ndim == 1 else y.shape[1]
        if y.ndim > 2:
            raise ValueError(f"`y` must be [N] or [N, D] for regression; got {y.shape}.")
        need = self.output_size(target_dim)
        if out_size != need:
            raise ValueError(
                f"`model` outputs {out_size} value(s) per example but a {self.noise} Gaussian "
                f"over {target_dim} target column(s) needs {need}."
            )

    def __repr__(self) -> str:
        return f"Gaussian(noise={self.noise!r}, scale={self.scale})"
