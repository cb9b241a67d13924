"""The ``Predictive`` base: one object for every predictive distribution.

A ``Predictive`` is a distribution over the outcome for every element of a *batch*
(inputs, or [days, routes], ...). Concrete kinds store their parameters with a leading
*sample axis* (posterior samples / mixture components / draws) followed by the batch axes,
so ``batch_shape`` is everything after the sample axis. Every kind is a registered pytree:
it passes through ``jit``, ``vmap`` and ``lax.scan`` like an array.

Conventions for arguments that are evaluated against the distribution (``log_prob(y)``,
``cdf(t)``, ``quantile(q)``): the argument broadcasts against ``batch_shape`` in the NumPy way,
and the result has the broadcast shape. A scalar threshold therefore gives one value per batch
element, and ``q`` of shape ``[Q, 1, ..., 1]`` gives ``[Q, *batch_shape]``. Observed outcomes
are the exception that would go silently wrong: ``log_prob(y)`` refuses a ``y`` with more axes
than the batch, and ``cdf`` a column ``[*batch_shape, 1]`` (a ``y`` ``[N, 1]`` against batch
``[N]`` would broadcast to ``[N, N]`` and average into a meaningless NLL), unless the caller
passes ``broadcast=True``. A model fitted on ``y`` ``[N]`` or ``[N, 1]`` (one target) predicts
batch ``[N]``: pass ``y_test`` as ``[N]`` (``y_test[:, 0]``).
``take`` selects batch elements, e.g. one route of a ``[days, routes]`` predictive.

Kinds (all final; build them through the constructors below):

- ``Point``: a Dirac at ``values`` (a point predictor).
- ``GaussianMixture``: weighted mixture of Gaussians; a single Gaussian is a one-component
  mixture. Regression posteriors (ensembles, MCMC, Laplace, VI) produce this.
- ``Samples``: raw predictive draws (an external sampler, a simulator).
- ``Categorical``: mixture over posterior samples of class probabilities (classification).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from bdl._validation import as_float, check_finite, check_probability, is_concrete


class Predictive(abc.ABC):
    """Abstract base of every predictive distribution. See the module docstring."""

    # Axis of every parameter array where the batch axes begin (after the sample axis).
    _batch_start: ClassVar[int] = 1

    # ----------------------------------------------------------------- constructors
    @staticmethod
    def point(values) -> Predictive:
        """A Dirac predictive at ``values`` (shape ``batch_shape``)."""
        from bdl.predictive._point import Point

        return Point.create(values)

    @staticmethod
    def gaussian(loc, scale) -> Predictive:
        """One Gaussian per batch element: ``loc``, ``scale`` broadcast to ``batch_shape``."""
        from bdl.predictive._mixture import GaussianMixture

        loc, scale = as_float(loc), as_float(scale)
        shape = broadcast_shape(scale, loc.shape, "scale", "`loc`")
        return GaussianMixture.create(
            jnp.broadcast_to(loc, shape)[None], jnp.broadcast_to(scale, shape)[None]
        )

    @staticmethod
    def gaussian_mixture(loc, scale, weights=None, *, loc_var=None) -> Predictive:
        """A mixture of Gaussians; ``loc``/``scale`` are ``[S, *batch_shape]``.

        ``weights`` is ``None`` (uniform), ``[S]`` or ``[S, *batch_shape]`` and sums to one over
        the sample axis. ``loc_var`` (>= 0, broadcasts to ``loc``) is the variance of each
        component's mean when that mean is itself uncertain (a linearised predictive:
        ``J Sigma J^T``): component k is then ``N(loc_k, scale_k^2 + loc_var_k)``, with
        ``scale`` the observation noise (aleatoric) and ``loc_var`` counted as epistemic.
        """
        from bdl.predictive._mixture import GaussianMixture

        return GaussianMixture.create(loc, scale, weights, loc_var=loc_var)

    @staticmethod
    def categorical(probs=None, *, logits=None, weights=None) -> Predictive:
        """A mixture of categoricals; ``probs`` or ``logits`` is ``[S, *batch_shape, C]``."""
        from bdl.predictive._categorical import Categorical

        return Categorical.create(probs=probs, logits=logits, weights=weights)

    @staticmethod
    def from_samples(samples) -> Predictive:
        """An empirical predictive from raw draws ``samples`` of shape ``[N, *batch_shape]``."""
        from bdl.predictive._samples import Samples

        return Samples.create(samples)

    # ----------------------------------------------------------------- structure
    @property
    @abc.abstractmethod
    def batch_shape(self) -> tuple[int, ...]:
        """Shape of the batch (everything after the sample axis)."""

    @property
    @abc.abstractmethod
    def num_samples(self) -> int:
        """Size of the sample axis (mixture components / draws); 1 for a point predictor."""

    @property
    def is_classification(self) -> bool:
        """True for distributions over class labels."""
        return False

    def take(self, indices, axis: int = 0) -> Predictive:
        """The predictive of the batch elements ``indices`` along batch axis ``axis``.

        Works like ``jnp.take`` on every parameter: an integer index drops the axis, an index
        array keeps it. E.g. ``pred.take(2, axis=-1)`` is route 2 of a ``[days, routes]``
        predictive.
        """
        n_batch = len(self.batch_shape)
        if not -n_batch <= axis < n_batch:
            raise ValueError(f"`axis` {axis} is out of range for batch shape {self.batch_shape}.")
        size = self.batch_shape[axis]
        if is_concrete(indices):
            idx = np.asarray(indices)
            if idx.dtype.kind not in "iu" or np.any((idx < -size) | (idx >= size)):
                raise ValueError(
                    f"`indices` must be integers in [{-size}, {size}) for axis {axis}."
                )
        where = self._batch_start + axis % n_batch
        return jax.tree.map(lambda x: jnp.take(x, indices, axis=where), self)

    def affine(self, shift=0.0, scale=1.0) -> Predictive:
        """The predictive of ``shift + scale * Y`` for ``Y`` distributed as this one.

        ``shift`` and ``scale`` broadcast against ``batch_shape`` (scalars, or per-output
        arrays); ``scale`` must be positive. Used to report a model trained on standardised
        targets in the original units: ``pred.affine(y_mean, y_std)``. Regression only.
        """
        if self.is_classification:
            raise TypeError("`affine` is defined for regression predictives only.")
        shift, scale = as_float(shift), as_float(scale)
        check_finite("shift", shift)
        check_finite("scale", scale)
        if is_concrete(scale) and np.any(np.asarray(scale) <= 0):
            raise ValueError("`scale` must be positive.")
        for name, value in (("shift", shift), ("scale", scale)):
            if broadcast_shape(value, self.batch_shape, name, "the batch shape") != self.batch_shape:
                raise ValueError(f"`{name}` of shape {value.shape} must broadcast to the batch "
                                 f"shape {self.batch_shape}.")
        batch = self.batch_shape
        return self._affine(jnp.broadcast_to(shift, batch), jnp.broadcast_to(scale, batch))

    def _affine(self, shift: jax.Array, scale: jax.Array) -> Predictive:
        """``shift`` and ``scale`` arrive broadcast to ``batch_shape``."""
        return self._unsupported("affine")

    # ----------------------------------------------------------------- moments
    def mean(self) -> jax.Array:
        """Predictive mean, shape ``batch_shape``."""
        return self._unsupported("mean")

    def aleatoric_variance(self) -> jax.Array:
        """Expected observation-noise variance E_theta[Var(y | theta)], ``batch_shape``."""
        return self._unsupported("aleatoric_variance")

    def epistemic_variance(self) -> jax.Array:
        """Variance of the mean over the posterior Var_theta[E(y | theta)], ``batch_shape``."""
        return self._unsupported("epistemic_variance")

    def variance(self) -> jax.Array:
        """Total predictive variance (aleatoric + epistemic), shape ``batch_shape``."""
        return self.aleatoric_variance() + self.epistemic_variance()

    def std(self) -> jax.Array:
        """Predictive standard deviation, shape ``batch_shape``."""
        return jnp.sqrt(self.variance())

    # ----------------------------------------------------------------- distribution
    def log_prob(self, y, *, broadcast: bool = False) -> jax.Array:
        """Log density (regression) or log probability (classification) of observed ``y``.

        ``y`` has the batch shape (or a shape that broadcasts to it without adding axes, such
        as a scalar), and so has the result. A ``y`` with more axes, e.g. a column ``[N, 1]``
        against batch ``[N]``, raises a ``ValueError``: NumPy broadcasting would score every
        element against every ``y`` (``[N, N]``). ``broadcast=True`` asks for exactly that.
        """
        if not broadcast:
            check_observed_shape(y, self.batch_shape, "y")
        return self._log_prob(y)

    def cdf(self, t, *, broadcast: bool = False) -> jax.Array:
        """P(Y <= t); ``t`` broadcasts against ``batch_shape`` (leading axes of ``t`` give a
        batch of thresholds, ``[T, 1, ..., 1]`` -> ``[T, *batch_shape]``).

        A ``t`` shaped ``[*batch_shape, 1]`` (a column of observed values against batch
        ``[N]``) raises unless ``broadcast=True``: it would give ``[N, N]``.
        """
        if not broadcast:
            check_not_a_column(t, self.batch_shape, "t")
        return self._cdf_of(t)

    def _log_prob(self, y) -> jax.Array:
        return self._unsupported("log_prob")

    def _cdf_of(self, t) -> jax.Array:
        return self._unsupported("cdf")

    def quantile(self, q) -> jax.Array:
        """Inverse CDF at probability ``q`` in [0, 1]; broadcasts against ``batch_shape``."""
        return self._unsupported("quantile")

    def interval(self, level=0.9) -> tuple[jax.Array, jax.Array]:
        """Central interval ``(lower, upper)`` holding probability ``level`` in [0, 1]."""
        check_probability("level", level)
        level = as_float(level)
        return self.quantile((1.0 - level) / 2.0), self.quantile((1.0 + level) / 2.0)

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """``n`` draws from the predictive, shape ``[n, *batch_shape]``."""
        return self._unsupported("sample")

    # ----------------------------------------------------------------- classification
    def probs(self) -> jax.Array:
        """Posterior-averaged class probabilities, shape ``[*batch_shape, C]``."""
        return self._unsupported("probs")

    def entropy(self) -> jax.Array:
        """Entropy of the predictive (total uncertainty), shape ``batch_shape``."""
        return self._unsupported("entropy")

    def expected_entropy(self) -> jax.Array:
        """Posterior-averaged entropy E_theta[H(y | theta)] (aleatoric), ``batch_shape``."""
        return self._unsupported("expected_entropy")

    def mutual_information(self) -> jax.Array:
        """Mutual information between y and theta (epistemic): entropy - expected entropy.

        Clipped at zero, so float rounding never makes it negative.
        """
        return jnp.maximum(self.entropy() - self.expected_entropy(), 0.0)

    # ----------------------------------------------------------------- helpers
    def _unsupported(self, name: str):
        raise NotImplementedError(f"{type(self).__name__} predictive does not define `{name}()`.")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(batch_shape={self.batch_shape}, num_samples={self.num_samples})"
        )


def expand_to(param: jax.Array, shape: tuple[int, ...], n_batch: int) -> jax.Array:
    """``param`` ``[S, *batch]`` reshaped to ``[S, 1, ..., 1, *batch]`` with ``1 + len(shape)``
    axes, so it broadcasts against ``x[None]`` for an evaluation array ``x`` of ``shape`` (which
    ends in the batch shape)."""
    extra = len(shape) - n_batch
    return param.reshape(param.shape[:1] + (1,) * extra + param.shape[1:])


def broadcast_shape(x, shape: tuple[int, ...], name: str, against: str) -> tuple[int, ...]:
    """The broadcast of ``x.shape`` with ``shape``; a ``ValueError`` naming ``name`` if none."""
    try:
        return jnp.broadcast_shapes(jnp.shape(x), tuple(shape))
    except ValueError:
        raise ValueError(
            f"`{name}` of shape {jnp.shape(x)} does not broadcast against {against} of "
            f"shape {tuple(shape)}."
        ) from None


def check_observed_shape(y, batch_shape: tuple[int, ...], name: str) -> None:
    """``y`` must broadcast to ``batch_shape`` without adding axes (see ``log_prob``)."""
    shape = broadcast_shape(y, batch_shape, name, "the batch shape")
    if shape != tuple(batch_shape):
        raise ValueError(
            f"`{name}` of shape {jnp.shape(y)} would broadcast the batch shape "
            f"{tuple(batch_shape)} to {shape}; pass `{name}` with the batch shape (e.g. "
            f"`{name}[..., 0]` for a column), or broadcast=True to score every element "
            f"against every `{name}`."
        )


def check_not_a_column(t, batch_shape: tuple[int, ...], name: str) -> None:
    """Refuse ``t`` shaped ``[*batch_shape, 1]`` when the batch's last axis is not 1."""
    batch_shape = tuple(batch_shape)
    if batch_shape and batch_shape[-1] != 1 and jnp.shape(t) == (*batch_shape, 1):
        raise ValueError(
            f"`{name}` of shape {jnp.shape(t)} is a column against the batch shape "
            f"{batch_shape}: it would give {(*batch_shape, batch_shape[-1])}. Pass "
            f"`{name}[..., 0]`, or broadcast=True for every threshold at every element."
        )


def broadcast_eval(x, batch_shape: tuple[int, ...], name: str) -> jax.Array:
    """``x`` as a float array broadcast to its broadcast shape with ``batch_shape`` (the shape
    of every result); a clear error naming ``name`` if they do not broadcast."""
    x = as_float(x)
    return jnp.broadcast_to(x, broadcast_shape(x, batch_shape, name, "the batch shape"))
