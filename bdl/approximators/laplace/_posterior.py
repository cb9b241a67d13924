"""The Laplace posterior: a Gaussian over (a subset of) the network parameters.

``predict`` returns a ``bdl.Predictive`` in one of two ways:

- ``"glm"`` (default): the network linearised at the mode, ``f(x) ~ N(f*(x), J Sigma J^T)``.
  Homoscedastic regression: the closed-form Gaussian ``N(f*(x), diag(J Sigma J^T) + sigma^2)``.
  Heteroscedastic regression: a mixture over draws of the linearised raw scale, each component
  Gaussian in the linearised mean (see ``_predictive.glm_heteroscedastic``).
  Classification: the probit approximation ``softmax(f / sqrt(1 + pi/8 diag(J Sigma J^T)))``
  (``link_approx="probit"``) or a mixture over draws of the linearised logits
  (``link_approx="mc"``). Any other likelihood: a mixture over draws of the linearised outputs.
- ``"mc"``: a mixture over parameter draws ``theta_s ~ N(theta*, Sigma)`` pushed through the
  network.

Regression predictives report the split the Monte Carlo predictive estimates:
``aleatoric_variance()`` is the noise ``sigma^2`` (heteroscedastic: its expectation under the
linearised scale), ``epistemic_variance()`` the parameter part ``diag(J Sigma J^T)`` (of the
mean outputs); ``variance()`` is their sum.

Draws need a ``key``; the closed forms do not. Everything for one call runs as one jitted
program, compiled once per input shape and option set.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from bdl._cache import memo
from bdl._validation import check_choice, check_finite, check_positive
from bdl.approximators._method import Posterior, register_posterior
from bdl.approximators._state import as_state_dict, register_named_tuple, restore
from bdl.approximators.laplace._curvature import (
    Curvature,
    DiagGGN,
    FullGGN,
    KronGGN,
    jacobian_from_taps,
    output_gradients,
    per_example_jacobian,
)
from bdl.approximators.laplace._gaussian import (
    DiagFactor,
    Factor,
    FullFactor,
    KronFactor,
    covariance,
    sample,
    variance_from_jacobian,
    variance_from_taps,
)
from bdl.approximators.laplace._likelihood import FitTerms, has_noise_scale
from bdl.approximators.laplace._marglik import Hyper, posterior_factor
from bdl.approximators.laplace._predictive import glm_gaussian, glm_heteroscedastic
from bdl.approximators.laplace._subnet import Subnet
from bdl.likelihoods import Categorical, Gaussian, Likelihood
from bdl.models import Network, Params
from bdl.predictive import Predictive
from bdl.training import as_key, check_inputs

DEFAULT_PREDICT_CHUNK = 4096


for _named in (FullGGN, DiagGGN, KronGGN, FullFactor, DiagFactor, KronFactor, FitTerms, Hyper):
    register_named_tuple(_named)


@dataclasses.dataclass(frozen=True, eq=False)
class LaplacePosterior(Posterior):
    """``N(theta*, P^{-1})`` over the parameters ``subset`` covers; the rest stay at the MAP.

    Attributes:
      method: ``"laplace"``.
      network, likelihood: as fitted.
      net_params: the MAP network parameters (no particle axis).
      subnet: which parameters are covered and how (``Subnet``).
      hessian: ``"full"``, ``"diag"`` or ``"kfac"``.
      theta: the flat mode of the covered parameters ``[D]``.
      curvature: the GGN (at unit noise for a homoscedastic Gaussian).
      terms: the data fit at the mode (for the evidence at other hyper-parameters).
      hyper: the (tuned) log prior precision and log noise scale.
      factor: the posterior precision factor at ``hyper``.
      info: timings, tuning history, options (plain Python / numpy).
      input_shape: shape of one input example.
    """

    method: str
    network: Network
    likelihood: Likelihood
    net_params: Params
    subnet: Subnet
    hessian: str
    theta: jax.Array
    curvature: Curvature
    terms: FitTerms
    hyper: Hyper
    factor: Factor
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    input_shape: tuple[int, ...] = ()

    kind: ClassVar[str] = "laplace"

    # ------------------------------------------------------------------ the contract
    def sample_params(self, key: jax.Array, num_samples: int) -> Params:
        """``{"net": [S, ...], "lik": [S, ...]}``: network draws (``sample``) and the
        (tuned) likelihood parameters, repeated."""
        return {"net": self.sample(key, num_samples),
                "lik": _lik_params(self.likelihood, self.hyper, int(num_samples))}

    def to_state(self) -> dict[str, Any]:
        return {
            "net_params": as_state_dict(self.net_params),
            "theta": self.theta,
            "curvature": self.curvature,
            "terms": self.terms,
            "hyper": self.hyper,
            "factor": self.factor,
            "hessian": self.hessian,
            "subset": self.subnet.subset,
        }

    @classmethod
    def from_state(cls, state, *, method, network, likelihood, info, input_shape):
        from bdl.approximators.laplace._subnet import build_subnet

        template = network.init(jax.random.key(0))
        net_params = restore("`path`", template, state["net_params"], "network parameters")
        subnet = build_subnet(network, net_params, jnp.zeros((1, *input_shape), jnp.float32),
                              state["subset"])
        theta = jnp.asarray(state["theta"])
        if theta.shape != (subnet.num_params,):
            raise ValueError(
                f"`path`: the saved Laplace posterior covers {theta.shape[0]} parameters but "
                f"`model` has {subnet.num_params} under subset={state['subset']!r}; was it "
                "saved with a different model?"
            )
        arrays = {k: jax.tree.map(jnp.asarray, state[k])
                  for k in ("curvature", "terms", "hyper", "factor")}
        return cls(method, network, likelihood, net_params, subnet, state["hessian"], theta,
                   arrays["curvature"], arrays["terms"], arrays["hyper"], arrays["factor"],
                   info, tuple(input_shape))

    # ------------------------------------------------------------------ hyper-parameters
    @property
    def prior_precision(self) -> np.ndarray:
        """The prior precision: a scalar, or one per layer group (``info["layers"]``)."""
        return np.exp(np.asarray(self.hyper.log_prior))

    @property
    def noise_scale(self) -> float | None:
        """The observation noise scale of a homoscedastic Gaussian (None otherwise)."""
        return None if self.hyper.log_noise is None else float(np.exp(self.hyper.log_noise))

    @property
    def mean(self) -> Params:
        """The posterior mean: the MAP network parameters."""
        return self.net_params

    def covariance(self) -> jax.Array:
        """The dense posterior covariance ``[D, D]`` of the covered parameters, in the order of
        ``jax.flatten_util.ravel_pytree`` of those parameters (all network parameters, or the
        last layer's ``{"bias", "kernel"}``)."""
        sub = self.subnet
        return _jitted(("covariance", sub), lambda: lambda f: covariance(sub, f))(self.factor)

    def log_marginal_likelihood(self, prior_precision=None, noise_scale=None) -> jax.Array:
        """The Laplace log evidence at the fitted hyper-parameters, or at the given ones
        (``prior_precision``: a scalar or one per layer group; ``noise_scale``: homoscedastic
        Gaussian only)."""
        hyper = self.hyper
        if prior_precision is None and noise_scale is None:
            # the dtype it was computed in: float64 data make it float64 even for float32 params
            dtype = jnp.result_type(*jax.tree.leaves(self.factor))
            return jnp.asarray(self.info["log_marginal_likelihood"], dtype)
        if prior_precision is not None:
            check_positive("prior_precision", prior_precision)
            log_prior = jnp.log(jnp.asarray(prior_precision, self.hyper.log_prior.dtype))
            if log_prior.ndim > 1 or (log_prior.ndim == 1 and log_prior.shape[0] not in
                                      (1, len(self.subnet.group_names))):
                raise ValueError(
                    f"`prior_precision` must be a scalar or hold one value per layer group "
                    f"({len(self.subnet.group_names)}); got shape {log_prior.shape}."
                )
            hyper = hyper._replace(log_prior=log_prior)
        if noise_scale is not None:
            if hyper.log_noise is None:
                raise ValueError("`noise_scale` applies to a homoscedastic Gaussian only.")
            check_positive("noise_scale", noise_scale)
            hyper = hyper._replace(log_noise=jnp.log(jnp.asarray(noise_scale,
                                                              self.hyper.log_prior.dtype)))
        sub = self.subnet
        fn = _jitted(("lml", sub),
                     lambda: lambda c, t, th, h: posterior_factor(sub, c, t, th, h)[1])
        return fn(self.curvature, self.terms, self.theta, hyper)

    # ------------------------------------------------------------------ sampling
    def sample(self, key: jax.Array, n: int) -> Params:
        """``n`` draws of the network parameters ``[n, ...]`` (uncovered ones at the MAP)."""
        z = jax.random.normal(as_key(key), (int(n), self.subnet.num_params), self.theta.dtype)

        sub = self.subnet

        def draw(net, theta, factor, z):
            thetas = theta + sample(sub, factor, z)
            return jax.vmap(lambda v: sub.with_theta(net, sub.unravel(v)))(thetas)

        return _jitted(("sample", sub), lambda: draw)(self.net_params, self.theta, self.factor, z)

    # ------------------------------------------------------------------ prediction
    def functional_variance(self, x, *, chunk_size: int = DEFAULT_PREDICT_CHUNK
                            ) -> tuple[jax.Array, jax.Array]:
        """Linearised outputs: mean ``f*(x)`` ``[N, K]`` and covariance ``J Sigma J^T``
        ``[N, K, K]`` for inputs ``x`` ``[N, ...]``."""
        x = check_inputs(x, "x")
        sub, chunk_size = self.subnet, int(chunk_size)
        fn = _jitted(("glm_moments", sub, chunk_size), lambda: lambda net, th, fa, x: _chunked(
            lambda xc: _glm_moments(sub, net, th, fa, xc), x, chunk_size))
        return fn(self.net_params, self.theta, self.factor, x)

    def predict(self, x, *, key: jax.Array | None = None, predictive: str = "glm",
                num_samples: int = 100, link_approx: str = "probit",
                chunk_size: int = DEFAULT_PREDICT_CHUNK) -> Predictive:
        """Predictive for inputs ``x`` ``[N, ...]``; batch shape ``[N]`` (``[N, D]`` for
        D-column regression targets).

        Args:
          key: PRNG key; needed for ``predictive="mc"``, ``link_approx="mc"`` and for the
            GLM predictive of likelihoods without a closed form (heteroscedastic Gaussian).
          predictive: ``"glm"`` (linearised network) or ``"mc"`` (parameter draws).
          num_samples: draws (mixture components) where draws are made.
          link_approx: classification GLM: ``"probit"`` (closed form) or ``"mc"``.
          chunk_size: inputs per chunk (bounds memory on large ``x``).
        """
        check_choice("predictive", predictive, ("glm", "mc"))
        check_choice("link_approx", link_approx, ("probit", "mc"))
        if int(num_samples) < 1:
            raise ValueError(f"`num_samples` must be >= 1; got {num_samples}.")
        x = _inputs(x)
        s = int(num_samples)
        if predictive == "mc":
            shape = (s, self.subnet.num_params)
        elif _heteroscedastic(self.likelihood):
            shape = (s, x.shape[0], int(self.info["num_outputs"]) // 2)
        elif not _closed_form(self.likelihood, link_approx):
            shape = (s, x.shape[0], int(self.info["num_outputs"]))
        else:
            shape = None
        if shape is None:
            z = _no_draws(self.theta.dtype)
        elif key is None:
            raise ValueError(
                f"`key` is required: this predictive ({predictive!r} for "
                f"{self.likelihood!r}) draws samples; pass key=jax.random.key(seed)."
            )
        else:
            z = jax.random.normal(as_key(key), shape, self.theta.dtype)
        spec = (self.subnet, self.likelihood, predictive,
                link_approx if predictive == "glm" else None, int(chunk_size))
        fn = _jitted(("predict", *spec), lambda: lambda *a: _predict(*spec, *a))
        return fn(self.net_params, self.theta, self.factor, self.hyper, x, z)


register_posterior(LaplacePosterior, ("net_params", "theta", "curvature", "terms", "hyper",
                                      "factor"))


def _jitted(key: tuple, build) -> Any:
    """``jax.jit(build())``, memoised on ``key`` (``bdl._cache``): the posteriors of repeated
    identical fits share one ``Subnet``, so they share (and do not recompile) these programs.
    ``build`` must not close over a posterior, whose arrays the memo would keep alive."""
    return memo(("laplace_posterior", *key), lambda: jax.jit(build()))


def _no_draws(dtype) -> jax.Array:
    return memo(("laplace_no_draws", jnp.dtype(dtype).name), lambda: jnp.zeros((0,), dtype))


def _heteroscedastic(lik: Likelihood) -> bool:
    return isinstance(lik, Gaussian) and lik.noise == "heteroscedastic"


def _closed_form(lik: Likelihood, link_approx: str) -> bool:
    if isinstance(lik, Categorical):
        return link_approx == "probit"
    return has_noise_scale(lik)


def _glm_moments(sub: Subnet, net, theta, factor, x):
    inputs = sub.features(net, x)
    if sub.kron_perm is not None:
        f, acts, grads = output_gradients(sub, sub.unravel(theta), inputs)
        if isinstance(factor, (KronFactor, DiagFactor)):
            return f, variance_from_taps(sub, factor, acts, grads)
        return f, variance_from_jacobian(factor, jacobian_from_taps(sub, acts, grads))
    f = sub.apply(sub.unravel(theta), inputs)
    return f, variance_from_jacobian(factor, per_example_jacobian(sub, theta, inputs))


def _predict(sub: Subnet, lik: Likelihood, predictive, link_approx, chunk_size, net, theta,
             factor, hyper, x, z):
    num_samples = z.shape[0]
    if predictive == "mc":
        deltas = sample(sub, factor, z)

        def outputs(xc):
            inputs = sub.features(net, xc)
            return jax.vmap(lambda d: sub.apply(sub.unravel(theta + d), inputs))(deltas)

        f = jnp.moveaxis(_chunked(lambda xc: jnp.moveaxis(outputs(xc), 0, 1), x,
                                  chunk_size), 1, 0)  # [S, N, K]
        return lik.predictive(f, _lik_params(lik, hyper, num_samples))
    f, var = _chunked(lambda xc: _glm_moments(sub, net, theta, factor, xc), x, chunk_size)
    if isinstance(lik, Categorical) and link_approx == "probit":
        kappa = 1.0 / jnp.sqrt(1.0 + jnp.pi / 8.0 * jnp.diagonal(var, axis1=1, axis2=2))
        return Predictive.categorical(jax.nn.softmax(kappa * f, axis=-1)[None])
    if has_noise_scale(lik):
        return glm_gaussian(f, var, jnp.exp(hyper.log_noise))
    if _heteroscedastic(lik):
        return glm_heteroscedastic(f, var, z, lik.min_scale)
    evals, evecs = jnp.linalg.eigh(var)
    root = evecs * jnp.sqrt(jnp.maximum(evals, 0.0))[:, None, :]
    draws = f[None] + jnp.einsum("nkr,snr->snk", root, z)
    return lik.predictive(draws, _lik_params(lik, hyper, num_samples))


def _lik_params(lik: Likelihood, hyper: Hyper, num_samples: int) -> dict:
    if isinstance(lik, Gaussian) and lik.learns_scale:
        return {"log_scale": jnp.full((num_samples,), hyper.log_noise)}
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (num_samples, *jnp.shape(a))),
                        lik.init_params())


def _inputs(x) -> jax.Array:
    """``check_inputs``, without a copy for a float ``jax.Array`` (the predictive hot path)."""
    if isinstance(x, jax.Array) and x.ndim >= 1 and x.shape[0] > 0 and jnp.issubdtype(
            x.dtype, jnp.floating):
        check_finite("x", x)
        return x
    return check_inputs(x, "x")


def _chunked(fn, x: jax.Array, chunk_size: int):
    """``fn(x)`` evaluated over chunks of ``chunk_size`` rows (``lax.map``), concatenated."""
    n = x.shape[0]
    if n <= chunk_size:
        return fn(x)
    num = -(-n // chunk_size)
    pad = num * chunk_size - n
    xs = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) if pad else x
    out = jax.lax.map(fn, xs.reshape(num, chunk_size, *x.shape[1:]))
    return jax.tree.map(lambda a: a.reshape(num * chunk_size, *a.shape[2:])[:n], out)
