"""``bdl.fit("laplace", ...)``: MAP, then a Gaussian from the GGN, then evidence tuning."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from bdl._validation import check_choice, check_positive
from bdl._warnings import NonFiniteError, NotConvergedWarning
from bdl.approximators._map import fit_map
from bdl.approximators._options import TrainOptions, split_options
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
_OWN = ("hessian", "subset", "prior_precision", "prior_structure", "tune", "tune_noise",
        "tune_steps", "tune_learning_rate", "map_posterior", "chunk_size")


def fit_laplace(
    key: jax.Array, network: Network, likelihood: Likelihood, data: Batch, **options: Any
) -> LaplacePosterior:
    """Laplace approximation around the MAP with a generalised Gauss-Newton curvature.

    Options:
      hessian: ``"kfac"`` (default; Kronecker factors per dense layer), ``"diag"`` or
        ``"full"`` (``[D, D]``: small models or the last layer only).
      subset: ``"last_layer"`` (default; the model must end in a dense layer) or ``"all"``.
      prior_precision: positive float, or one value per layer group; default: the
        precision of the MAP stage's ``prior``.
      prior_structure: ``"scalar"`` (default) or ``"layerwise"`` (one precision per layer;
        the default when ``prior_precision`` gives one value per layer).
      tune: ``"marglik"`` maximises the Laplace evidence over the log prior precision (and
        noise, see ``tune_noise``) by Adam, starting from the prior, with the mode held
        fixed; ``None`` keeps them. Default: ``"marglik"`` when neither ``prior`` nor
        ``prior_precision`` is given (the library's default prior is a placeholder) or when
        ``tune_steps``, ``tune_learning_rate`` or ``tune_noise=True`` is; otherwise ``None``:
        a prior you pass is used as given, so on a linear-Gaussian model the posterior is
        the exact one for that prior. A tuning that has not converged at ``tune_steps``
        warns (``bdl.NotConvergedWarning``); a non-finite evidence or posterior raises
        ``bdl.NonFiniteError``.
      tune_noise: also tune the noise scale of a homoscedastic Gaussian (default: when the
        likelihood learns its scale).
      tune_steps (200), tune_learning_rate (0.1): the Adam steps of the tuning.
      map_posterior: a one-particle MAP ``ParticlePosterior`` to start from instead of
        training one (then only ``prior`` of the training options applies: it sets the
        starting prior precision).
      chunk_size: examples per chunk of the curvature pass (bounds memory).
      Any ``TrainOptions`` field (epochs, learning_rate, prior, ...) for the MAP.

    Returns:
      A ``LaplacePosterior``; ``info`` holds the tuned hyper-parameters, the evidence, the
      tuning history and timings (compile time apart from run time).
    """
    train, opts = _parse_options(options, likelihood)
    map_post = opts.map_posterior
    if map_post is None:
        map_post = fit_map(key, network, likelihood, data,
                           **{k: v for k, v in options.items() if k not in _OWN})
    else:
        _check_map_posterior(map_post, network, options)
    net_params = jax.tree.map(lambda a: jnp.asarray(a[0]), map_post.particles["net"])
    lik_params = jax.tree.map(lambda a: jnp.asarray(a[0]), map_post.particles["lik"])

    sub = build_subnet(network, net_params, data["x"], opts.subset)
    if opts.hessian == "kfac" and sub.kron_perm is None:
        raise ValueError(sub.kron_unavailable)
    theta, _ = ravel_pytree(sub.theta(net_params))
    chunk = opts.chunk_size or _default_chunk(sub, opts.hessian, network, net_params, data)

    stages = build_stages(sub, opts.hessian, likelihood, chunk_size=int(chunk), tune=opts.tune,
                          tune_noise=opts.tune_noise, steps=opts.tune_steps,
                          learning_rate=opts.tune_learning_rate)
    timings: dict[str, dict[str, float]] = {}
    (curv, terms), timings["curvature"] = _timed(stages.curvature, theta, net_params,
                                                 lik_params, data)
    dtype = jnp.result_type(*jax.tree.leaves(curv))  # float64 data: float64 evidence
    init = Hyper(_initial_log_prior(sub, opts.prior_precision, opts.prior_structure, train,
                                    net_params, dtype),
                 _initial_log_noise(likelihood, lik_params, dtype))
    (hyper, factor, lml, history, report), timings[stages.hyper_stage] = _timed(
        stages.hyper, curv, terms, theta, init)
    history = np.asarray(history)
    _check_hyper(report, opts, init)

    info = {
        "hessian": opts.hessian,
        "subset": opts.subset,
        "prior_structure": opts.prior_structure,
        "layers": list(sub.group_names),
        "num_params": sub.num_params,
        "num_outputs": int(jax.eval_shape(network.apply, net_params, data["x"][:1]).shape[-1]),
        "prior_precision": np.exp(np.asarray(hyper.log_prior)).tolist(),
        "noise_scale": None if hyper.log_noise is None else float(np.exp(hyper.log_noise)),
        "log_marginal_likelihood": float(lml),
        "tune": opts.tune,
        "tune_history": history,
        "tune_gain": float(report.gain),
        "timings": timings,
        "map_history": map_post.info.get("history"),
    }
    return LaplacePosterior("laplace", network, likelihood, net_params, sub, opts.hessian, theta,
                            curv, terms, hyper, factor, info, tuple(data["x"].shape[1:]))


class LaplaceOptions(NamedTuple):
    """The method's own options, checked (see ``fit_laplace``)."""

    hessian: str
    subset: str
    prior_precision: Any
    prior_structure: str
    tune: str | None
    tune_noise: bool
    tune_steps: int
    tune_learning_rate: float
    map_posterior: Any
    chunk_size: int | None


def _parse_options(options: dict[str, Any], likelihood: Likelihood
                   ) -> tuple[TrainOptions, LaplaceOptions]:
    train, own = split_options(options, _OWN, "laplace")
    hessian = own.get("hessian", "kfac")
    subset = own.get("subset", "last_layer")
    check_choice("hessian", hessian, HESSIANS)
    check_choice("subset", subset, SUBSETS)
    given_prior = own.get("prior_precision")
    if given_prior is not None:
        check_positive("prior_precision", given_prior)
    per_layer = given_prior is not None and np.size(given_prior) > 1
    structure = own.get("prior_structure", "layerwise" if per_layer else "scalar")
    check_choice("prior_structure", structure, ("scalar", "layerwise"))
    user_prior = given_prior is not None or "prior" in options
    asks_tuning = ("tune_steps" in own or "tune_learning_rate" in own
                   or own.get("tune_noise") is True)
    tuning = own.get("tune", None if user_prior and not asks_tuning else "marglik")
    if tuning not in ("marglik", None):
        raise ValueError(f"Unknown tune {tuning!r}; choose one of: 'marglik', None.")
    learns_noise = isinstance(likelihood, Gaussian) and likelihood.learns_scale
    tune_noise = bool(own.get("tune_noise", learns_noise and tuning is not None))
    if tune_noise and not learns_noise:
        raise ValueError(
            "`tune_noise` needs a homoscedastic Gaussian likelihood with a learned scale "
            f"(Gaussian(scale=None)); got {likelihood!r}."
        )
    steps = int(own.get("tune_steps", 200))
    lr = float(own.get("tune_learning_rate", 0.1))
    if steps < 1:
        raise ValueError(f"`tune_steps` must be >= 1; got {steps}.")
    check_positive("tune_learning_rate", lr)
    chunk = own.get("chunk_size")
    if chunk is not None and int(chunk) < 1:
        raise ValueError(f"`chunk_size` must be >= 1; got {chunk}.")
    return train, LaplaceOptions(hessian, subset, given_prior, structure, tuning, tune_noise,
                                 steps, lr, own.get("map_posterior"), chunk)


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
    """The programs ``fit_laplace`` runs (exposed so benchmarks can time them repeatedly)."""
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


def _check_hyper(report: TuneReport, opts: LaplaceOptions, init: Hyper) -> None:
    """Raise on a non-finite evidence or posterior; warn on a tuning that has not converged."""
    if not bool(report.finite):
        start = np.exp(np.asarray(init.log_prior)).tolist()
        raise NonFiniteError(
            "The Laplace evidence or posterior precision is not finite"
            + (" after the marginal-likelihood tuning" if opts.tune else "")
            + f" (prior precision from {start}). Check the MAP (a NaN or exploded fit), pass a "
            "larger `prior_precision`, or use tune=None; no posterior was returned."
        )
    if opts.tune and float(report.gain) > GAIN_TOL:
        warnings.warn(
            f"Laplace's marginal-likelihood tuning did not converge in tune_steps="
            f"{opts.tune_steps} Adam steps (learning rate {opts.tune_learning_rate}): a Newton "
            f"step would still gain {float(report.gain):.3g} nats of evidence (max |gradient| "
            f"{float(report.grad_norm):.3g} in the log hyper-parameters). Raise `tune_steps`, "
            "or pass `prior_precision` (and tune=None) to fix the prior.",
            NotConvergedWarning, stacklevel=4)


def _timed(fn: Callable, *args) -> tuple[Any, dict[str, float]]:
    """``jit(fn)(*args)`` compiled ahead of time, so compile time is reported apart."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    t2 = time.perf_counter()
    return out, {"compile_s": t1 - t0, "run_s": t2 - t1}


def _check_map_posterior(post: Any, network: Network, options: dict) -> None:
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
    ignored = sorted(set(options) - set(_OWN) - {"prior"})
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

