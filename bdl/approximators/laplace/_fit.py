"""``bdl.fit("laplace", ...)``: MAP, then a Gaussian from the GGN, then evidence tuning."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from bdl._cache import memo
from bdl._validation import check_choice, check_positive
from bdl._warnings import NonFiniteError, NotConvergedWarning
from bdl.approximators._map import fit_map
from bdl.approximators._method import options_from_kwargs
from bdl.approximators._options import TrainOptions
from bdl.approximators._posterior import ParticlePosterior
from bdl.approximators.laplace._curvature import build_curvature
from bdl.approximators.laplace._likelihood import has_noise_scale
from bdl.approximators.laplace._marglik import GAIN_TOL, Hyper, TuneReport, posterior_factor
from bdl.approximators.laplace._marglik import tune as tune_hyper
from bdl.approximators.laplace._posterior import LaplacePosterior
from bdl.approximators.laplace._subnet import Subnet, build_subnet, get_path
from bdl.likelihoods import Gaussian, Likelihood
from bdl.models import Network, Params
from bdl.training import Batch

HESSIANS = ("full", "diag", "kfac")
SUBSETS = ("all", "last_layer")
TUNES = ("auto", "marglik", None)
DEFAULT_TUNE_STEPS = 200
DEFAULT_TUNE_LEARNING_RATE = 0.1


@dataclasses.dataclass(frozen=True)
class LaplaceOptions:
    """Options of ``"laplace"``.

    Attributes:
      train: how the MAP is trained (``TrainOptions``; its fields are keywords too). Its
        ``prior`` also sets the starting prior precision (unless ``prior_precision`` is given).
      hessian: ``"kfac"`` (Kronecker factors per dense layer), ``"diag"`` or ``"full"``
        (``[D, D]``: small models or the last layer only).
      subset: ``"last_layer"`` (the model must end in a dense layer) or ``"all"``.
      prior_precision: a positive float, or one value per layer group; None: the precision
        of ``train.prior``.
      prior_structure: ``"scalar"`` or ``"layerwise"`` (one precision per layer); None:
        ``"layerwise"`` when ``prior_precision`` gives several values, else ``"scalar"``.
      tune: ``"marglik"`` maximises the Laplace evidence over the log prior precision (and
        noise, see ``tune_noise``) by Adam, starting from the prior, with the mode held fixed;
        None keeps them. ``"auto"`` (default): ``"marglik"`` when neither a ``prior`` other
        than the default (``TrainOptions.prior_given``) nor ``prior_precision`` is
        given, or when ``tune_noise=True`` or a ``tune_steps`` / ``tune_learning_rate`` other
        than the default asks for tuning; otherwise None: a prior you pass is used as given,
        so on a linear-Gaussian model the posterior is the exact one for that prior.
      tune_noise: also tune the noise scale of a homoscedastic Gaussian; None: when the
        likelihood learns its scale and the prior is tuned.
      tune_steps, tune_learning_rate: the Adam steps of the tuning.
      map_posterior: a one-particle MAP ``ParticlePosterior`` to start from instead of
        training one (then only ``train.prior`` applies).
      chunk_size: examples per chunk of the curvature pass (bounds memory); None: all of them
        up to 4,096 (KFAC, dense-layer diag), else as many as keep ~8M Jacobian entries.
    """

    train: TrainOptions = dataclasses.field(default_factory=TrainOptions)
    hessian: str = "kfac"
    subset: str = "last_layer"
    prior_precision: float | tuple[float, ...] | None = None
    prior_structure: str | None = None
    tune: str | None = "auto"
    tune_noise: bool | None = None
    tune_steps: int = DEFAULT_TUNE_STEPS
    tune_learning_rate: float = DEFAULT_TUNE_LEARNING_RATE
    map_posterior: Any = None
    chunk_size: int | None = None

    def __post_init__(self):
        check_choice("hessian", self.hessian, HESSIANS)
        check_choice("subset", self.subset, SUBSETS)
        if self.prior_precision is not None:
            check_positive("prior_precision", self.prior_precision)
            values = np.asarray(self.prior_precision, np.float64)
            # hashable and plain: a float, or a tuple of floats
            object.__setattr__(self, "prior_precision", float(values) if values.ndim == 0
                               else tuple(float(v) for v in values.reshape(-1)))
        if self.prior_structure is not None:
            check_choice("prior_structure", self.prior_structure, ("scalar", "layerwise"))
        if self.tune not in TUNES:
            raise ValueError(f"Unknown tune {self.tune!r}; choose one of: 'auto', 'marglik', "
                             "None.")
        if self.tune_noise is not None and not isinstance(self.tune_noise, (bool, np.bool_)):
            raise TypeError(f"`tune_noise` must be True, False or None; got {self.tune_noise!r}.")
        if int(self.tune_steps) < 1:
            raise ValueError(f"`tune_steps` must be >= 1; got {self.tune_steps}.")
        check_positive("tune_learning_rate", self.tune_learning_rate)
        if self.chunk_size is not None and int(self.chunk_size) < 1:
            raise ValueError(f"`chunk_size` must be >= 1; got {self.chunk_size}.")

    def resolved_structure(self) -> str:
        """``prior_structure``, or its default for ``prior_precision``."""
        if self.prior_structure is not None:
            return self.prior_structure
        return "layerwise" if isinstance(self.prior_precision, tuple) and len(
            self.prior_precision) > 1 else "scalar"

    def resolved_tune(self) -> str | None:
        """``tune``, with ``"auto"`` resolved (see the class docstring)."""
        if self.tune != "auto":
            return self.tune
        user_prior = self.prior_precision is not None or self.train.prior_given
        asks = (self.tune_noise is True or self.tune_steps != DEFAULT_TUNE_STEPS
                or self.tune_learning_rate != DEFAULT_TUNE_LEARNING_RATE)
        return None if user_prior and not asks else "marglik"

    def resolved_tune_noise(self, likelihood: Likelihood) -> bool:
        """``tune_noise``, or its default for ``likelihood``; raises when it cannot apply."""
        learns_noise = isinstance(likelihood, Gaussian) and likelihood.learns_scale
        if self.tune_noise is None:
            return learns_noise and self.resolved_tune() is not None
        if self.tune_noise and not learns_noise:
            raise ValueError(
                "`tune_noise` needs a homoscedastic Gaussian likelihood with a learned scale "
                f"(Gaussian(scale=None)); got {likelihood!r}."
            )
        return bool(self.tune_noise)


def fit_laplace(
    key: jax.Array, network: Network, likelihood: Likelihood, data: Batch,
    options: LaplaceOptions | None = None, **kwargs: Any,
) -> LaplacePosterior:
    """Laplace approximation around the MAP with a generalised Gauss-Newton curvature, with
    ``options`` (a ``LaplaceOptions``, or its fields and those of ``TrainOptions`` as
    keywords).

    A tuning that has not converged at ``tune_steps`` warns (``bdl.NotConvergedWarning``); a
    non-finite evidence or posterior raises ``bdl.NonFiniteError``. The subnetwork, the two
    compiled stages and the posterior's programs are memoised on the configuration (model,
    likelihood, options, shapes), so a repeated identical fit compiles nothing.

    Returns:
      A ``LaplacePosterior``; ``info`` holds the tuned hyper-parameters, the evidence, the
      tuning history and timings (compile time apart from run time).
    """
    opts = options if options is not None else options_from_kwargs(LaplaceOptions, kwargs,
                                                                   "laplace")
    tune, structure = opts.resolved_tune(), opts.resolved_structure()
    tune_noise = opts.resolved_tune_noise(likelihood)
    map_post = opts.map_posterior
    if map_post is None:
        map_post = fit_map(key, network, likelihood, data, opts.train)
    else:
        _check_map_posterior(map_post, network, opts.train)
    net_params = jax.tree.map(lambda a: jnp.asarray(a[0]), map_post.particles["net"])
    lik_params = jax.tree.map(lambda a: jnp.asarray(a[0]), map_post.particles["lik"])

    sub = build_subnet(network, net_params, data["x"], opts.subset)
    if opts.hessian == "kfac" and sub.kron_perm is None:
        raise ValueError(sub.kron_unavailable)
    theta, _ = ravel_pytree(sub.theta(net_params))
    chunk = opts.chunk_size or _default_chunk(sub, opts.hessian, network, net_params, data)

    stages = build_stages(sub, opts.hessian, likelihood, chunk_size=int(chunk), tune=tune,
                          tune_noise=tune_noise, steps=int(opts.tune_steps),
                          learning_rate=float(opts.tune_learning_rate))
    timings: dict[str, dict[str, float]] = {}
    (curv, terms), timings["curvature"] = _timed(stages.curvature, theta, net_params,
                                                 lik_params, data)
    dtype = jnp.result_type(*jax.tree.leaves(curv))  # float64 data: float64 evidence
    init = Hyper(_initial_log_prior(sub, opts.prior_precision, structure, opts.train,
                                    net_params, dtype),
                 _initial_log_noise(likelihood, lik_params, dtype))
    (hyper, factor, lml, history, report), timings[stages.hyper_stage] = _timed(
        stages.hyper, curv, terms, theta, init)
    history = np.asarray(history)
    _check_hyper(report, opts, tune, init)

    info = {
        "hessian": opts.hessian,
        "subset": opts.subset,
        "prior_structure": structure,
        "layers": list(sub.group_names),
        "num_params": sub.num_params,
        "num_outputs": int(jax.eval_shape(network.apply, net_params, data["x"][:1]).shape[-1]),
        "prior_precision": np.exp(np.asarray(hyper.log_prior)).tolist(),
        "noise_scale": None if hyper.log_noise is None else float(np.exp(hyper.log_noise)),
        "log_marginal_likelihood": float(lml),
        "tune": tune,
        "tune_history": history,
        "tune_gain": float(report.gain),
        "timings": timings,
        "map_history": map_post.info.get("history"),
    }
    return LaplacePosterior("laplace", network, likelihood, net_params, sub, opts.hessian, theta,
                            curv, terms, hyper, factor, info, tuple(data["x"].shape[1:]))


class Stages(NamedTuple):
    """The two compiled programs of a Laplace fit (pure functions; jit them).

    Attributes:
      curvature: ``(theta [D], net_params, lik_params, batch) -> (GGN, FitTerms)``.
      hyper: ``(GGN, FitTerms, theta, init Hyper) -> (Hyper, factor, log evidence,
        tuning history [steps], TuneReport)``: the evidence tuning (when ``tune="marglik"``)
        and the posterior precision factor at the result.
      hyper_stage: ``"marglik"`` or ``"factor"`` (the name of the second stage's timing).
    """

    curvature: Callable
    hyper: Callable
    hyper_stage: str


def build_stages(sub: Subnet, hessian: str, likelihood: Likelihood, *, chunk_size: int,
                 tune: str | None, tune_noise: bool, steps: int, learning_rate: float) -> Stages:
    """The programs ``fit_laplace`` runs (exposed so benchmarks can time them repeatedly),
    memoised (``bdl._cache``): equal arguments give the very same functions, so their
    compiled programs are reused."""
    config = (sub, hessian, likelihood, int(chunk_size), tune, bool(tune_noise), int(steps),
              float(learning_rate))
    return memo(("laplace_stages", *config), lambda: _build_stages(*config))


def _build_stages(sub: Subnet, hessian: str, likelihood: Likelihood, chunk_size: int,
                  tune: str | None, tune_noise: bool, steps: int, learning_rate: float
                  ) -> Stages:
    curvature = build_curvature(sub, hessian, likelihood, chunk_size)

    def hyper(curv, terms, theta, init):
        zero = jnp.zeros((), theta.dtype)
        if tune == "marglik":
            tuned, history, report = tune_hyper(sub, curv, terms, theta, init,
                                                tune_noise=tune_noise, steps=steps,
                                                learning_rate=learning_rate)
        else:
            tuned, history = init, jnp.zeros((0,), theta.dtype)
            report = TuneReport(zero, zero, jnp.asarray(True))
        factor, lml = posterior_factor(sub, curv, terms, theta, tuned)
        finite = report.finite & jnp.isfinite(lml) & jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(factor)]))
        return tuned, factor, lml, history, report._replace(finite=finite)

    return Stages(curvature, hyper, "marglik" if tune == "marglik" else "factor")


def _check_hyper(report: TuneReport, opts: LaplaceOptions, tune: str | None, init: Hyper
                 ) -> None:
    """Raise on a non-finite evidence or posterior; warn on a tuning that has not converged."""
    if not bool(report.finite):
        start = np.exp(np.asarray(init.log_prior)).tolist()
        raise NonFiniteError(
            "The Laplace evidence or posterior precision is not finite"
            + (" after the marginal-likelihood tuning" if tune else "")
            + f" (prior precision from {start}). Check the MAP (a NaN or exploded fit), pass a "
            "larger `prior_precision`, or use tune=None; no posterior was returned."
        )
    if tune and float(report.gain) > GAIN_TOL:
        warnings.warn(
            f"Laplace's marginal-likelihood tuning did not converge in tune_steps="
            f"{opts.tune_steps} Adam steps (learning rate {opts.tune_learning_rate}): a Newton "
            f"step would still gain {float(report.gain):.3g} nats of evidence (max |gradient| "
            f"{float(report.grad_norm):.3g} in the log hyper-parameters). Raise `tune_steps`, "
            "or pass `prior_precision` (and tune=None) to fix the prior.",
            NotConvergedWarning, stacklevel=4)


def _timed(fn: Callable, *args) -> tuple[Any, dict[str, float]]:
    """``jit(fn)(*args)`` compiled ahead of time, so compile time is reported apart; the
    compiled program is memoised per ``fn`` and argument types (none the second time)."""
    t0 = time.perf_counter()
    spec = (jax.tree.structure(args), tuple(
        (jnp.shape(a), jnp.result_type(a), getattr(a, "weak_type", False),
         getattr(a, "sharding", None)) for a in jax.tree.leaves(args)))
    compiled = memo(("laplace_stage", fn, spec), lambda: jax.jit(fn).lower(*args).compile())
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    t2 = time.perf_counter()
    return out, {"compile_s": t1 - t0, "run_s": t2 - t1}


def _check_map_posterior(post: Any, network: Network, train: TrainOptions) -> None:
    if not isinstance(post, ParticlePosterior):
        raise TypeError(
            f"`map_posterior` must be the ParticlePosterior of bdl.fit('map', ...); got "
            f"{type(post).__name__}."
        )
    if post.num_particles != 1:
        raise ValueError(
            f"`map_posterior` must hold one particle (a MAP fit); it holds {post.num_particles}."
        )
    expected = jax.tree.structure(jax.eval_shape(network.init, jax.random.key(0)))
    got = jax.tree.structure(jax.tree.map(lambda a: a[0], post.particles["net"]))
    if expected != got:
        raise ValueError("`map_posterior` was fitted with a different model than `model`.")
    default = TrainOptions()
    ignored = sorted(f.name for f in dataclasses.fields(TrainOptions) if f.name != "prior"
                     and not _same(getattr(train, f.name), getattr(default, f.name)))
    if ignored:
        raise TypeError(f"Training option(s) {ignored} have no effect with `map_posterior`.")


def _initial_log_prior(sub: Subnet, given: Any, structure: str, train: TrainOptions,
                       net_params: Params, dtype) -> jax.Array:
    num_groups = len(sub.group_names)
    if given is not None:
        values = np.asarray(given, np.float64)
        if values.ndim == 0:
            values = values if structure == "scalar" else np.full(num_groups, float(values))
        elif values.shape != (num_groups,):
            raise ValueError(
                f"`prior_precision` must be a float or hold one value per layer group "
                f"({num_groups}: {list(sub.group_names)}); got shape {values.shape}."
            )
        elif structure == "scalar" and not np.all(values == values[0]):
            raise ValueError("A per-layer `prior_precision` needs prior_structure='layerwise'.")
        elif structure == "scalar":
            values = values[0]
        return jnp.log(jnp.asarray(values, dtype))
    # the MAP prior's precision, one value per group
    tree = train.prior.precision_tree(net_params)
    if sub.subset == "last_layer":
        tree = get_path(tree, sub.last_layer_path)
    theta = sub.theta(net_params)
    flat, _ = ravel_pytree(jax.tree.map(lambda lam, p: jnp.broadcast_to(lam, jnp.shape(p)),
                                        tree, theta))
    index = np.asarray(sub.group_index)
    first = np.array([np.asarray(flat)[np.argmax(index == g)] for g in range(num_groups)])
    log_values = np.log(first.astype(np.float64))
    if structure == "scalar":
        log_values = np.mean(log_values)
    return jnp.asarray(log_values, dtype)


def _initial_log_noise(likelihood: Likelihood, lik_params: Any, dtype) -> jax.Array | None:
    if not has_noise_scale(likelihood):
        return None
    if likelihood.scale is not None:
        return jnp.asarray(np.log(likelihood.scale), dtype)
    if "log_scale" not in lik_params:  # a MAP fitted with a fixed-scale likelihood
        return jnp.asarray(np.log(likelihood.init_scale), dtype)
    return jnp.asarray(lik_params["log_scale"], dtype).reshape(())


def _default_chunk(sub: Subnet, hessian: str, network: Network, net_params: Params,
                   data: Batch) -> int:
    n = int(data["x"].shape[0])
    if hessian == "kfac" or (hessian == "diag" and sub.kron_perm is not None):
        return min(n, 4096)
    out = jax.eval_shape(network.apply, net_params, data["x"][:1]).shape[-1]
    return int(max(1, min(n, 2**23 // max(1, out * sub.num_params))))



def _same(a: Any, b: Any) -> bool:
    """``a`` is ``b``, or equal plain values (arrays given count as different)."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False
