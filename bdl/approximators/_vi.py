"""Mean-field Gaussian variational inference (Bayes by backprop, Blundell et al. 2015).

The approximate posterior is a factorised Gaussian over the network parameter pytree
(``subset="all"``) or over the last dense layer alone (``subset="last_layer"``, the other
layers fixed at a MAP fit): ``q(w) = prod_j N(w_j; loc_j, softplus(raw_scale_j)^2)``. It is
fitted by maximising the reparameterised ELBO,
``E_q[log p(y | x, w)] - kl_weight * KL(q || p)``, with the expectation estimated on a
minibatch (scaled to the full data set) with ``num_mc_samples`` draws per step and the KL in
closed form against the ``IsotropicGaussian`` prior (per-layer precisions through
``prior.precision_tree``). Training is the training core's jitted ``lax.scan`` epoch with a
per-step key; homoscedastic noise scales are point estimates fitted with the same objective.

The Monte Carlo gradient noise is handled by the optimiser, not by a decay to zero: Adam at a
constant step size (1e-2) whose iterates are averaged over the last half of the run
(Polyak-Ruppert, ``tail_average``: an optax transformation whose state holds the running
means). By default the run is "until converged": doubling stages (2,000, 4,000, ... steps,
up to 32,000 or ``max_epochs``), each ending with a check that the ELBO no longer improves
between the last two quarters of the steps; the returned ``q`` is the average of the last
half. On conjugate Bayesian linear regression this lands within a few hundredths of a
posterior sd of the exact mean-field optimum (mean = the posterior mean, variances =
1 / diag(precision)) with 4 draws per step.

Distribution pieces come from ``numpyro.distributions`` (``Normal.rsample`` for the
reparameterised draws, ``kl_divergence`` for the closed-form Normal-Normal KL). numpyro over
distrax because it is the lighter, actively maintained dependency (distrax pulls in the
TFP-on-JAX substrate and is in maintenance mode), its distributions are plain pytrees that
trace under ``jit``/``vmap``/``grad`` leaf by leaf, and its KL registry covers the pair we need.
Local reparameterisation / flipout are not offered: they need the layer structure (pre-
activations), which the generic ``apply(params, x)`` view of a model deliberately hides.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Hashable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from numpyro.distributions import Normal, kl_divergence

from bdl._cache import memo
from bdl._validation import check_choice, check_positive
from bdl._warnings import NonFiniteError, NotConvergedWarning
from bdl.approximators._averaging import tail_average, tail_average_params
from bdl.approximators._map import fit_map
from bdl.approximators._method import Posterior, options_from_kwargs, register_posterior
from bdl.approximators._options import TrainOptions
from bdl.approximators._posterior import DEFAULT_PREDICT_CHUNK, ParticlePosterior
from bdl.approximators._state import (
    as_state_dict,
    get_path,
    json_path,
    register_named_tuple,
    restore,
)
from bdl.likelihoods import Likelihood
from bdl.models import Network, Params
from bdl.predictive import Predictive
from bdl.training import (
    Batch,
    build_chunk,
    build_epoch,
    check_inputs,
    init_state,
    split_validation,
    train,
)

FIRST_STEPS = 2000  # optimiser steps of the first stage when `epochs` is not given
MAX_STEPS = 32000  # cap on the optimiser steps when `epochs` is not given
DEFAULT_MC_SAMPLES = 4  # reparameterised draws per step
DEFAULT_INIT_SCALE = 0.05  # initial standard deviation of every factor
ELBO_TOL = 5e-3  # nats per example: an ELBO gain below this between quarters is settled
KeyPath = tuple[Hashable, ...]  # keys from the root of the parameter tree to a subtree


class MeanField(NamedTuple):
    """Factorised Gaussian over a parameter pytree.

    Attributes:
      loc: means, a pytree shaped like the parameters it covers.
      raw_scale: unconstrained scales, same structure; ``scale = softplus(raw_scale)``.
    """

    loc: Params
    raw_scale: Params


register_named_tuple(MeanField)


def init_mean_field(loc: Params, init_scale: float) -> MeanField:
    """``q`` centred on ``loc`` with every standard deviation equal to ``init_scale``."""
    raw = float(np.log(np.expm1(init_scale)))  # inverse softplus
    return MeanField(loc, jax.tree.map(lambda a: jnp.full(jnp.shape(a), raw, _float_dtype(a)), loc))


def mean_field_scale(q: MeanField) -> Params:
    """Standard deviations ``softplus(raw_scale)`` (pytree like ``q.loc``)."""
    return jax.tree.map(jax.nn.softplus, q.raw_scale)


def sample_mean_field(key: jax.Array, q: MeanField, num_samples: int) -> Params:
    """Reparameterised draws ``w = loc + scale * eps``: a pytree of ``[S, *leaf_shape]``.

    All factors are drawn as one flat vector (one PRNG call, which keeps compile times low)."""
    loc, unravel = ravel_pytree(q.loc)
    scale, _ = ravel_pytree(mean_field_scale(q))
    draws = Normal(loc, scale).rsample(key, (num_samples,))  # [S, D]
    return jax.vmap(unravel)(draws)


def kl_to_prior(q: MeanField, precision: Params) -> jax.Array:
    """``KL(q || N(0, 1/precision))`` summed over every parameter (scalar); ``precision`` is a
    pytree like ``q.loc`` of per-leaf scalars (``IsotropicGaussian.precision_tree``)."""

    def leaf(m, s, lam):
        return jnp.sum(kl_divergence(Normal(m, s), Normal(0.0, jax.lax.rsqrt(lam))))

    terms = jax.tree.map(leaf, q.loc, mean_field_scale(q), precision)
    return sum(jax.tree.leaves(terms), jnp.float32(0.0))


def elbo_loss(
    apply: Callable[[Params, jax.Array], jax.Array],
    likelihood: Likelihood,
    precision: Params,
    num_data: int,
    *,
    num_mc_samples: int = 1,
    kl_weight: float = 1.0,
    path: KeyPath = (),
) -> Callable[[Params, Batch, jax.Array], jax.Array]:
    """Negative ELBO per data point, ``loss(params, batch, key) -> scalar``.

    ``params = {"net": MeanField, "lik": likelihood params, "fixed": network params}``; the
    sampled subtree replaces ``fixed`` at ``path`` (``()``: the whole network, ``fixed`` unused).
    With B examples in the batch, weights ``w`` and S draws the loss is
    ``-((N / B) sum_i w_i mean_s log p(y_i | x_i, w_s) - kl_weight KL(q || p)) / N``:
    an unbiased estimate of the negative (tempered) ELBO divided by N. Pure in ``key``, so
    ``jax.vmap`` over keys (seeds) is safe.
    """

    def loss(params: Params, batch: Batch, key: jax.Array) -> jax.Array:
        fixed = jax.lax.stop_gradient(params["fixed"])
        draws = sample_mean_field(key, params["net"], num_mc_samples)
        f = jax.vmap(lambda w: apply(_insert(fixed, path, w), batch["x"]))(draws)  # [S, B, out]
        ll = jax.vmap(lambda fs: likelihood.log_likelihood(fs, batch["y"], params["lik"]))(f)
        b = batch["x"].shape[0]
        expected = (num_data / b) * jnp.sum(batch["w"] * jnp.mean(ll, axis=0))
        kl = kl_to_prior(params["net"], precision)
        return -(expected - kl_weight * kl) / num_data

    return loss


@dataclasses.dataclass(frozen=True)
class VIPosterior(Posterior):
    """A mean-field Gaussian over (a subset of) the network parameters.

    Attributes:
      method: ``"vi"``.
      network: the model's pure functions.
      likelihood: the likelihood it was fitted with.
      q: the variational ``MeanField`` over the subtree at ``path``.
      lik_params: point estimates of the likelihood parameters (no sample axis).
      fixed: full network parameters the subtree is inserted into (``{}`` for ``"all"``).
      path: keys from the root of the parameters to the subtree (``()``: all of them).
      info: history (``train_loss``/``val_loss`` per epoch/chunk, timings), options.
      input_shape: shape of one input example.
    """

    method: str
    network: Network
    likelihood: Likelihood
    q: MeanField
    lik_params: Params
    fixed: Params
    path: KeyPath
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    input_shape: tuple[int, ...] = ()

    kind: ClassVar[str] = "vi"

    def to_state(self) -> dict[str, Any]:
        return {"loc": as_state_dict(self.q.loc), "raw_scale": as_state_dict(self.q.raw_scale),
                "lik_params": as_state_dict(self.lik_params),
                "fixed": as_state_dict(self.fixed), "path": json_path(self.path)}

    @classmethod
    def from_state(cls, state, *, method, network, likelihood, info, input_shape):
        template = network.init(jax.random.key(0))
        path = tuple(state["path"])
        sub = get_path(template, path)
        q = MeanField(restore("`path`", sub, state["loc"], "variational means"),
                      restore("`path`", sub, state["raw_scale"], "variational scales"))
        lik_params = restore("`path`", likelihood.init_params(), state["lik_params"],
                             "likelihood parameters")
        fixed = {} if not path else restore("`path`", template, state["fixed"],
                                            "network parameters")
        return cls(method, network, likelihood, q, lik_params, fixed, path, info,
                   tuple(input_shape))

    @property
    def elbo(self) -> np.ndarray:
        """ELBO (full data set, KL weighted by ``kl_weight``) per epoch ``[E]``: the mean of
        the per-step minibatch estimates of the epoch."""
        return -self.info["num_train"] * np.asarray(self.info["history"]["train_loss"])

    @property
    def loc(self) -> Params:
        return self.q.loc

    @property
    def scale(self) -> Params:
        return mean_field_scale(self.q)

    def sample_params(self, key: jax.Array, num_samples: int) -> Params:
        """``{"net": [S, ...], "lik": [S, ...]}``: full network parameter draws from ``q``
        and the likelihood's point estimates, repeated."""
        return {"net": _sample_full(self.path, self.fixed, self.q, key, int(num_samples)),
                "lik": _broadcast(self.lik_params, int(num_samples))}

    def outputs(self, x, *, key: jax.Array, num_samples: int = 100,
                chunk_size: int = DEFAULT_PREDICT_CHUNK) -> jax.Array:
        """Network outputs ``[S, N, out]`` under ``S = num_samples`` parameter draws; inputs
        in chunks of ``chunk_size`` (the same draws for every chunk)."""
        x = check_inputs(x, "x")
        return _sampled_outputs(_core(self.network).apply, self.path, self.fixed, self.q, key, x,
                                int(num_samples), int(chunk_size))

    def predict(self, x, *, key: jax.Array | None = None, num_samples: int = 100,
                chunk_size: int = DEFAULT_PREDICT_CHUNK) -> Predictive:
        """Predictive for ``x`` ``[N, ...]``: the equally weighted mixture over
        ``num_samples`` parameter draws (batch shape ``[N]``, or ``[N, D]``)."""
        if key is None:
            raise ValueError("`key` is required: VI's predict samples parameters; pass "
                             "key=jax.random.key(seed).")
        f = self.outputs(x, key=key, num_samples=num_samples, chunk_size=chunk_size)
        return self.likelihood.predictive(f, _broadcast(self.lik_params, num_samples))

    def to_particles(self, key: jax.Array, num_samples: int) -> ParticlePosterior:
        """``num_samples`` draws as a ``ParticlePosterior`` (e.g. to ``save`` them)."""
        particles = self.sample_params(key, num_samples)
        return ParticlePosterior(self.method, self.network, self.likelihood, particles,
                                 self.info, self.input_shape)


@dataclasses.dataclass(frozen=True)
class VIOptions:
    """Options of ``"vi"`` (mean-field Gaussian VI, Bayes by backprop).

    Attributes:
      train: how the ELBO is optimised (``TrainOptions``; its fields are keywords too), and
        the MAP stage of ``subset="last_layer"``. The prior must provide ``precision_tree``
        (``IsotropicGaussian``). VI's reading of the shared fields: without ``optimizer``,
        Adam at a constant ``learning_rate`` (no decay: the tail averaging removes the Monte
        Carlo jitter a decay would); ``epochs=None`` (the default) runs until converged, in
        doubling stages of ``FIRST_STEPS``, ``2 * FIRST_STEPS``, ... optimiser steps (whole
        epochs) up to ``max_epochs`` (default ``MAX_STEPS`` steps).
      num_mc_samples: reparameterised draws per step.
      kl_weight: multiplies the KL (a temperature; < 1 = "cold").
      init_scale: initial standard deviation of every factor.
      average: return the mean of the iterates of the last half of the steps (Polyak-Ruppert
        averaging); False: the last iterate.
      subset: ``"all"`` or ``"last_layer"`` (the last dense layer; the other layers fixed at a
        MAP fit with the same training options).
      map_epochs: epochs of that MAP fit; ``None`` = ``train.epochs``; 0 takes
        ``train.init_params`` as they are.
    """

    train: TrainOptions = dataclasses.field(default_factory=TrainOptions)
    num_mc_samples: int = DEFAULT_MC_SAMPLES
    kl_weight: float = 1.0
    init_scale: float = DEFAULT_INIT_SCALE
    average: bool = True
    subset: str = "all"
    map_epochs: int | None = None

    def __post_init__(self):
        if int(self.num_mc_samples) < 1:
            raise ValueError(f"`num_mc_samples` must be >= 1; got {self.num_mc_samples}.")
        if float(self.kl_weight) < 0:
            raise ValueError(f"`kl_weight` must be >= 0; got {self.kl_weight}.")
        check_positive("init_scale", self.init_scale)
        if not isinstance(self.average, (bool, np.bool_)):
            raise TypeError(f"`average` must be True or False; got {self.average!r}.")
        check_choice("subset", self.subset, ("all", "last_layer"))
        if self.map_epochs is not None and int(self.map_epochs) < 0:
            raise ValueError(f"`map_epochs` must be >= 0 (or None: `epochs`); got "
                             f"{self.map_epochs}.")
        if self.subset == "last_layer" and self.map_epochs == 0 and self.train.init_params is None:
            raise ValueError("`map_epochs`=0 takes the body from `init_params`; pass them.")
        if not hasattr(self.train.prior, "precision_tree"):
            raise TypeError(f"`prior` must provide precision_tree (IsotropicGaussian); got "
                            f"{self.train.prior!r}.")


register_posterior(VIPosterior, ("q", "lik_params", "fixed"))


def fit_vi(
    key: jax.Array, network: Network, likelihood: Likelihood, data: Batch,
    options: VIOptions | None = None, **kwargs: Any,
) -> VIPosterior:
    """Mean-field Gaussian VI (Bayes by backprop) with ``options`` (a ``VIOptions``, or its
    fields and those of ``TrainOptions`` as keywords).

    With ``epochs=None`` a stage is converged when the mean ELBO of the last quarter of its
    steps is no better than that of the quarter before it (within 3 standard errors or
    ``ELBO_TOL`` nats per example, that error at most ``2 * ELBO_TOL``).
    ``info["converged"]`` says whether it was; at the cap, or after ``epochs`` given and not
    converged, a ``bdl.NotConvergedWarning`` says to raise ``max_epochs`` (or ``epochs``).
    After early stopping on the validation loss (``patience``) ``info["converged"]`` is None.

    The compiled programs are memoised on the configuration (model, likelihood, prior,
    optimiser, options, data shapes), so a repeated identical fit compiles nothing.
    """
    opts = options if options is not None else options_from_kwargs(VIOptions, kwargs, "vi")
    train_opts = opts.train
    num_mc, kl_weight = int(opts.num_mc_samples), float(opts.kl_weight)
    init_scale, average, subset = float(opts.init_scale), bool(opts.average), opts.subset

    k_map, k_init, k_val, k_train = jax.random.split(key, 4)
    lik0 = likelihood.init_params()
    if subset == "all":
        start = train_opts.init_params
        loc = network.init(k_init) if start is None else jax.tree.map(jnp.asarray, start)
        fixed, path = {}, ()
    else:
        fixed, lik0 = _map_stage(k_map, network, likelihood, data, train_opts, opts.map_epochs)
        path = find_last_layer(network, fixed, data["x"][:8])
        loc = _get(fixed, path)

    train_data, val_data = split_validation(data, train_opts.validation_fraction, k_val)
    n = train_data["x"].shape[0]
    batch_size = train_opts.resolved_batch_size(n)
    per_epoch = 1 if batch_size >= n else n // batch_size  # optimiser steps per epoch
    stages = _stages(train_opts.epochs, train_opts.max_epochs, per_epoch)
    windows = tuple(_window(end, prev) for end, prev in zip(stages, (0, *stages[:-1]), strict=True))
    lr = None if train_opts.optimizer is not None else float(train_opts.learning_rate)
    program = _Program(_core(network), likelihood, train_opts.prior, train_opts.optimizer, lr,
                       n, batch_size, num_mc, kl_weight, path, average,
                       tuple(tuple(e * per_epoch for e in w) for w in windows),
                       val_data is not None)
    chunk, optimizer = memo(("vi", program), lambda: _build_program(program))
    params = {"net": init_mean_field(loc, init_scale), "lik": lik0, "fixed": fixed}
    state = init_state(k_train, params, optimizer)
    histories, check = [], {}
    for end, window in zip(stages, windows, strict=True):
        state, hist = train(
            state, chunk, train_data, val_data, epochs=end,
            chunk_epochs=train_opts.chunk_epochs or min(stages[0], 100),
            patience=train_opts.patience, progress=train_opts.progress,
            checkpoint_dir=train_opts.checkpoint_dir, description=f"vi ({subset})",
        )
        histories.append(hist)
        if int(state.epoch) < end:  # early stopping: the validation loss decided
            check = {"converged": None, "elbo_gain": None, "elbo_gain_se": None}
            break
        check = _elbo_check(np.concatenate([h["train_loss"] for h in histories]), window)
        if check["converged"]:
            break
    history = _join(histories)
    if average:
        net, lik, drift = _averaged(state, windows, per_epoch)
    else:
        net, lik, drift = state.best_params["net"], state.best_params["lik"], None
    _check_finite(net, lik)
    epochs_done = int(state.epoch)
    info = {"history": history, "num_train": n, "subset": subset, "num_mc_samples": num_mc,
            "kl_weight": kl_weight, "init_scale": init_scale, "average": average,
            "epochs": epochs_done, "num_steps": epochs_done * per_epoch, "drift": drift,
            **check}
    if check["converged"] is False:
        gain, se = check["elbo_gain"], check["elbo_gain_se"]
        warnings.warn(
            f"VI did not converge in {epochs_done} epochs ({epochs_done * per_epoch} steps):"
            f" the ELBO still improved by {gain:.3g} nats per example (standard error "
            f"{se:.2g}) between the last two quarters of the steps. Raise `max_epochs` (or `epochs`).",
            NotConvergedWarning, stacklevel=3,
        )
    return VIPosterior("vi", network, likelihood, net, lik, state.best_params["fixed"], path,
                       info, tuple(data["x"].shape[1:]))


class _Program(NamedTuple):
    """Everything the compiled training chunk of a VI fit depends on (hashable: the memo key
    of ``_build_program``; arrays such as ``init_params`` are arguments, not part of it)."""

    network: Network  # only ``forward`` and the flags (``_core``)
    likelihood: Likelihood
    prior: Any
    optimizer: optax.GradientTransformation | None  # the user's, or None: Adam at
    learning_rate: float | None  # this constant step size (None with a user optimizer)
    num_data: int
    batch_size: int
    num_mc_samples: int
    kl_weight: float
    path: KeyPath
    average: bool
    step_windows: tuple[tuple[int, int, int], ...]  # tail-averaging windows, in steps
    has_val: bool


def _build_program(p: _Program) -> tuple[Callable, optax.GradientTransformation]:
    """The jitted chunk ``(state, data, val, num_epochs) -> (state, log)`` and the optimiser
    of a VI fit."""
    inner = p.optimizer if p.optimizer is not None else optax.adam(p.learning_rate)
    if p.average:
        inner = tail_average(inner, p.step_windows)
    optimizer = optax.multi_transform(
        {"train": inner, "freeze": optax.set_to_zero()},
        lambda t: {k: jax.tree.map(lambda _, k=k: "freeze" if k == "fixed" else "train", v)
                   for k, v in t.items()},
    )
    apply, path = p.network.apply, p.path

    def loss(params: Params, batch: Batch, key: jax.Array) -> jax.Array:
        # the prior's per-leaf precisions are constants of the tree structure
        whole = params["net"].loc if not path else params["fixed"]
        precision = _get(p.prior.precision_tree(whole), path)
        return elbo_loss(apply, p.likelihood, precision, p.num_data,
                         num_mc_samples=p.num_mc_samples, kl_weight=p.kl_weight,
                         path=path)(params, batch, key)

    def val_nll(params: Params, batch: Batch) -> jax.Array:  # at the variational mean
        f = apply(_insert(params["fixed"], path, params["net"].loc), batch["x"])
        return -jnp.mean(p.likelihood.log_likelihood(f, batch["y"], params["lik"]))

    epoch = build_epoch(loss, optimizer, p.num_data, p.batch_size, loss_takes_key=True)
    chunk = jax.jit(build_chunk(epoch, val_nll if p.has_val else None), static_argnums=3)
    return chunk, optimizer


def _core(network: Network) -> Network:
    """The parts of ``network`` a compiled program reads (not ``init``, a fresh closure for
    an NNX instance), so that fits of equal models share their programs."""
    flags = (network.has_state, network.stochastic)
    return memo(("vi_core", network.forward, flags),
                lambda: Network(None, network.forward, has_state=flags[0], stochastic=flags[1]))


def _stages(epochs: int | None, max_epochs: int | None, per_epoch: int) -> tuple[int, ...]:
    """Cumulative epoch counts at which to check convergence: ``(epochs,)`` when given, else
    doubling from ``FIRST_STEPS`` optimiser steps (whole epochs) up to ``max_epochs``
    (default ``MAX_STEPS`` steps), the last stage ending at the cap."""
    if epochs is not None:
        return (int(epochs),)
    cap = int(max_epochs) if max_epochs else max(1, MAX_STEPS // per_epoch)
    stages = [min(-(-FIRST_STEPS // per_epoch), cap)]
    while stages[-1] < cap:
        stages.append(min(2 * stages[-1], cap))
    return tuple(stages)


def _window(end: int, previous: int) -> tuple[int, int, int]:
    """The averaging window ``(start, mid, end)`` (epochs) of a stage ending at ``end`` after
    one ending at ``previous``: the last half of the run, or less so as not to reach back
    into the previous stage; split in two (the first half empty for a 1-epoch run)."""
    start = max(end // 2, previous)
    return start, start + (end - start) // 2, end


def _averaged(state, windows: tuple[tuple[int, int, int], ...], per_epoch: int
              ) -> tuple[MeanField, Params, float | None]:
    """``q`` and likelihood parameters to return: the mean of the iterates in the last
    averaging window reached (the best/last iterate when the run stopped before any), and
    how far the means of its two halves lie apart (``drift``: max |loc gap| / scale)."""
    first, second, step = tail_average_params(state.opt_state)
    step = int(step)
    ends = [w[2] * per_epoch for w in windows]
    k = min(int(np.searchsorted(ends, step - 1, side="right")), len(windows) - 1)
    lo, mid, hi = (e * per_epoch for e in windows[k])
    n1, n2 = min(max(step - lo, 0), mid - lo), min(max(step - mid, 0), hi - mid)
    best = state.best_params
    if n1 + n2 == 0:
        return best["net"], best["lik"], None
    w1 = n1 / (n1 + n2)
    mix = lambda a, b: (w1 * a + (1.0 - w1) * b).astype(a.dtype)
    pick = lambda t: {"net": t["net"], "lik": t["lik"]}
    avg = jax.tree.map(mix, pick(first), pick(second))
    drift = None
    if n1 and n2:
        scale = mean_field_scale(avg["net"])
        gaps = jax.tree.map(lambda a, b, s: jnp.max(jnp.abs(a - b) / s),
                            first["net"].loc, second["net"].loc, scale)
        drift = float(max(jax.tree.leaves(gaps), default=0.0))
    return avg["net"], avg["lik"], drift


def _elbo_check(train_loss: np.ndarray, window: tuple[int, int, int]) -> dict[str, Any]:
    """Did the ELBO settle over the averaging ``window`` (epochs)? ``converged`` is True
    when the mean training loss of its second half is lower than its first half's by no more
    than 3 standard errors or ``ELBO_TOL`` nats per example, and that standard error is at
    most ``2 * ELBO_TOL`` (too few steps to tell is not converged); None when a half has
    fewer than two epochs (or the history is shorter than the window, after a resume)."""
    start, mid, end = window
    tail = np.asarray(train_loss, np.float64)[-(end - start):] if end > start else []
    a, b = tail[: mid - start], tail[mid - start:]
    if len(tail) < end - start or len(a) < 2 or len(b) < 2:
        return {"converged": None, "elbo_gain": None, "elbo_gain_se": None}
    gain = float(a.mean() - b.mean())
    se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    settled = gain <= max(3.0 * se, ELBO_TOL) and se <= 2.0 * ELBO_TOL
    return {"converged": bool(settled), "elbo_gain": gain, "elbo_gain_se": se}


def _join(histories: list[dict[str, Any]]) -> dict[str, Any]:
    """One history from those of consecutive ``train`` calls."""
    out = dict(histories[-1])
    for name in ("train_loss", "val_loss"):
        parts = [np.asarray(h[name]) for h in histories]
        out[name] = np.concatenate(parts, axis=-1)
    for name in ("compile_s", "run_s"):
        if all(name in h for h in histories):
            out[name] = float(sum(h[name] for h in histories))
    return out


def _check_finite(net: MeanField, lik: Params) -> None:
    leaves = jax.tree.leaves((net, lik))
    if not all(bool(jnp.all(jnp.isfinite(a))) for a in leaves):
        raise NonFiniteError(
            "VI's variational parameters became non-finite. Lower `learning_rate`, or "
            "raise `num_mc_samples`."
        )


def find_last_layer(network: Network, params: Params, x: jax.Array) -> KeyPath:
    """Path of the last dense layer: the ``{"kernel": [h, out], "bias": [out]}`` node whose
    bias shifts the model's output one-for-one (so nothing but the identity follows it).

    Raises a ``ValueError`` when there is no such node or more than one.
    """
    f0 = network.apply(params, x)
    out = f0.shape[-1]
    delta = jnp.linspace(0.5, 1.5, out, dtype=f0.dtype)
    found = []
    for path in _dense_nodes(params):
        node = _get(params, path)
        if node["kernel"].shape[-1] != out or jnp.shape(node["bias"]) != (out,):
            continue
        shifted = _insert(params, path, {**node, "bias": node["bias"] + delta})
        if np.allclose(network.apply(shifted, x) - f0, delta, rtol=1e-3, atol=1e-4):
            found.append(path)
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} ({found})"
        raise ValueError(
            f"subset='last_layer' needs a model whose output is a dense layer with a kernel "
            f"[h, {out}] and a bias [{out}] (nothing after it); found {what} such layers in "
            "the parameter tree. Use subset='all', or a model ending in a plain Dense/Linear."
        )
    return found[0]


def _map_stage(key, network, likelihood, data, train_opts: TrainOptions, map_epochs):
    """Network and likelihood parameters of a MAP fit (the frozen body of last-layer VI)."""
    epochs = train_opts.epochs if map_epochs is None else int(map_epochs)
    if epochs == 0:
        return jax.tree.map(jnp.asarray, train_opts.init_params), likelihood.init_params()
    ckpt = train_opts.checkpoint_dir
    map_opts = dataclasses.replace(
        train_opts, epochs=epochs, checkpoint_dir=None if ckpt is None else Path(ckpt) / "map")
    body = fit_map(key, network, likelihood, data, map_opts)
    first = lambda tree: jax.tree.map(lambda a: a[0], tree)
    return first(body.particles["net"]), first(body.particles["lik"])


@partial(jax.jit, static_argnames=("path", "num_samples"))
def _sample_full(path, fixed, q, key, num_samples):
    draws = sample_mean_field(key, q, num_samples)
    return jax.vmap(lambda w: _insert(fixed, path, w))(draws)


@partial(jax.jit, static_argnames=("apply", "path", "num_samples", "chunk_size"))
def _sampled_outputs(apply, path, fixed, q, key, x, num_samples, chunk_size):
    draws = sample_mean_field(key, q, num_samples)
    run = jax.vmap(lambda w, xc: apply(_insert(fixed, path, w), xc), in_axes=(0, None))
    n = x.shape[0]
    if n <= chunk_size:
        return run(draws, x)
    num_chunks = -(-n // chunk_size)
    pad = num_chunks * chunk_size - n
    xs = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) if pad else x
    out = jax.lax.map(lambda xc: run(draws, xc),
                      xs.reshape(num_chunks, chunk_size, *x.shape[1:]))  # [C, S, chunk, out]
    return jnp.moveaxis(out, 0, 1).reshape(num_samples, num_chunks * chunk_size, -1)[:, :n]


def _broadcast(tree: Params, num: int) -> Params:
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (num, *jnp.shape(a))), tree)


def _dense_nodes(tree: Any, path: KeyPath = ()):
    if isinstance(tree, Mapping):
        if "kernel" in tree and "bias" in tree and jnp.ndim(tree["kernel"]) == 2:
            yield path
        for k, v in tree.items():
            yield from _dense_nodes(v, (*path, k))


def _get(tree: Params, path: KeyPath) -> Params:
    for k in path:
        tree = tree[k]
    return tree


def _insert(tree: Params, path: KeyPath, value: Params) -> Params:
    """``tree`` with the subtree at ``path`` replaced by ``value`` (no copies of arrays)."""
    if not path:
        return value
    return {**tree, path[0]: _insert(tree[path[0]], path[1:], value)}


def _float_dtype(a: Any) -> Any:
    dtype = jnp.result_type(a)
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float)
