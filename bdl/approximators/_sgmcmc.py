"""Stochastic-gradient MCMC on blackjax: SGLD, SGHMC and cyclical SG-MCMC.

- ``"sgld"`` (Welling & Teh 2011): ``blackjax.sgld``, one step per minibatch:
  ``params += step_size * grad + sqrt(2 * temperature * step_size) * N(0, I)``, ``grad`` the
  minibatch estimate of the gradient of the full-data log posterior (``N / B`` scaling).
- ``"sghmc"`` (Chen et al. 2014): ``blackjax.sghmc``; one step = a fresh minibatch, a fresh
  momentum ``N(0, I)`` and ``num_integration_steps`` steps of the friction-corrected dynamics
  ``params += step_size * m; m += -friction * step_size * m + step_size * grad + noise``
  (all integration steps of one sampler step share its minibatch; the refreshed momentum is
  N(0, I) whatever the temperature, as in blackjax).
- ``"cyclical_sgld"`` (Zhang et al. 2020, cSG-MCMC): the cosine step size
  ``step_size / 2 * (cos(pi * r) + 1)``, ``r`` the position within a cycle in [0, 1); while
  ``r < exploration_fraction`` the steps are noiseless (SGD-like exploration: the blackjax
  kernel at temperature 0), then the sampling phase draws with noise, and the last
  ``num_samples / num_cycles`` steps of every cycle (every ``thinning``-th) are kept.
  ``base="sghmc"`` runs the same schedule on SGHMC (its momentum refresh still moves the
  exploration steps by ~``step_size``).

All chains run vmapped in one compiled program; see ``_sampling_loop`` for chunking,
checkpoints and resumption.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import blackjax
import jax
import jax.numpy as jnp
import numpy as np

from bdl._cache import memo
from bdl._validation import check_choice, check_positive
from bdl.approximators._method import options_from_kwargs
from bdl.approximators._sample_posterior import SamplePosterior, assemble_posterior
from bdl.approximators._sampler_common import (
    SamplerOptions,
    check_draws,
    initial_positions,
    log_density_fn,
    max_curvature,
    run_fields,
    tree_spec,
)
from bdl.approximators._sampling_loop import (
    Checkpoint,
    Schedule,
    build_run_chunk,
    fingerprint,
    init_loop_state,
    keep_schedule,
    run_loop,
)
from bdl.likelihoods import Likelihood
from bdl.models import Network, Params
from bdl.training import Batch

StepSize = float | Callable[[np.ndarray], np.ndarray] | None

# Default step sizes: fixed fractions of the stability limits that the largest curvature
# lambda of the negative log posterior at the chains' starting points sets (``max_curvature``;
# lambda grows with the data size N and the model's scale, so the steps follow both).
# - SGLD, step = SGLD_STEP_FACTOR / lambda: Euler-Maruyama's stationary variance along a
#   direction of curvature l is 1 / (l (1 - step * l / 2)): at most 5% too wide (stiffest
#   direction), and the chain decorrelates in ~2 lambda / (0.1 l) steps.
# - SGHMC, step = SGHMC_STEP_FACTOR / sqrt(lambda): blackjax's explicit Euler integrator gains
#   energy ~ (step * sqrt(l))^2 per step against the friction's 2 * DEFAULT_DAMPING: variance
#   at most ~ 1 + 0.1^2 / 0.4 = 2.5% too wide.
# - cyclical: the peak of the cosine is CYCLICAL_PEAK_FACTOR times the SGLD / SGHMC limit;
#   the kept draws come from the last part of each cycle, where the step is below a third
#   of the peak (see CyclicalOptions).
SGLD_STEP_FACTOR = 0.1
SGHMC_STEP_FACTOR = 0.1
CYCLICAL_PEAK_FACTOR = 0.075


@dataclasses.dataclass(frozen=True)
class SGLDOptions:
    """Options of ``"sgld"``.

    Attributes:
      sampler: how the chains run (``SamplerOptions``: chains, temperature, prior, starting
        points, checkpoints; its fields are keywords too).
      step_size: the Langevin step on the full-data log posterior (not on a per-example mean
        loss: ``step_size * N`` is the equivalent SGD learning rate). A float, or a function
        ``steps [T] -> step sizes [T]`` (numpy) for a schedule. Default (None):
        ``SGLD_STEP_FACTOR / curvature``, the curvature being the largest Hessian eigenvalue
        of the negative log posterior at the starting points (it scales with N); recorded in
        ``posterior.info["step_size_max"]`` and ``info["curvature"]``.
      batch_size: minibatch size (drawn with replacement each step); default as in training
        (full batch up to 2,048 examples, else 128). ``>= N`` gives exact gradients.
      num_burnin: steps discarded before the first kept draw.
      num_samples: draws kept per chain; the posterior has ``num_chains * num_samples``
        particles.
      thinning: keep one step in ``thinning`` after burn-in.
    """

    sampler: SamplerOptions = dataclasses.field(default_factory=SamplerOptions)
    step_size: StepSize = None
    batch_size: int | None = None
    num_burnin: int = 1000
    num_samples: int = 500
    thinning: int = 20

    def __post_init__(self):
        _check_sg(self)

    def default_step_size(self, curvature: float) -> float:
        """The default step size for the largest curvature of the negative log posterior."""
        return SGLD_STEP_FACTOR / curvature


# friction x step size of SGHMC's default friction: the share of the momentum damped per step
DEFAULT_DAMPING = 0.2


@dataclasses.dataclass(frozen=True)
class SGHMCDynamics:
    """The SGHMC dynamics (composed as the field ``dynamics`` into ``SGHMCOptions`` and
    ``CyclicalOptions``; its fields are keywords too).

    Attributes:
      num_integration_steps: integration steps per sampler step (>= 2; each one costs one
        minibatch gradient); momentum is refreshed at every sampler step.
      friction: ``alpha`` of the SGHMC dynamics. blackjax's integrator decays the momentum
        by ``1 - friction * step_size`` per integration step and takes the gradient at the
        old position, so it adds energy at every step: with blackjax's default 0.01 and the
        small steps of a network posterior nothing removes it and the draws come out
        overdispersed. Default (None): ``DEFAULT_DAMPING / step_size`` (peak step size), a
        fixed share of the momentum damped per step whatever the scale of the problem.
      noise_estimate: ``beta``, an estimate of the gradient noise subtracted from the injected
        noise (0 = none).
    """

    num_integration_steps: int = 10
    friction: float | None = None
    noise_estimate: float = 0.0

    composable: ClassVar[bool] = True

    def __post_init__(self):
        if int(self.num_integration_steps) < 2:
            raise ValueError("`num_integration_steps` must be >= 2 (blackjax's SGHMC step moves "
                             f"the position before the first gradient); got "
                             f"{self.num_integration_steps}.")
        if self.friction is not None:
            check_positive("friction", self.friction)
        if self.noise_estimate < 0:
            raise ValueError(f"`noise_estimate` must be >= 0; got {self.noise_estimate}.")

    def resolved_friction(self, step_size: StepSize) -> float:
        """``friction``, or ``DEFAULT_DAMPING`` divided by the (peak / first) step size."""
        if self.friction is not None:
            return float(self.friction)
        base = step_size
        first = float(np.max(np.asarray(base(np.arange(1))))) if callable(base) else float(base)
        if not first > 0:
            raise ValueError("the default `friction` needs a positive step size; pass `friction`.")
        return DEFAULT_DAMPING / first


@dataclasses.dataclass(frozen=True)
class SGHMCOptions:
    """Options of ``"sghmc"``: ``sampler``, ``batch_size``, ``num_samples`` and ``thinning``
    as for SGLD, plus

    Attributes:
      dynamics: the SGHMC dynamics (``SGHMCDynamics``: ``num_integration_steps``,
        ``friction``, ``noise_estimate``).
      step_size: the integration step; default (None) ``SGHMC_STEP_FACTOR / sqrt(curvature)``
        (see ``SGLDOptions.step_size``).
      num_burnin: sampler steps discarded before the first kept draw.
    """

    sampler: SamplerOptions = dataclasses.field(default_factory=SamplerOptions)
    dynamics: SGHMCDynamics = dataclasses.field(default_factory=SGHMCDynamics)
    step_size: StepSize = None
    batch_size: int | None = None
    num_burnin: int = 200
    num_samples: int = 500
    thinning: int = 4

    def __post_init__(self):
        _check_sg(self)

    def default_step_size(self, curvature: float) -> float:
        return SGHMC_STEP_FACTOR / float(np.sqrt(curvature))


@dataclasses.dataclass(frozen=True)
class CyclicalOptions:
    """Options of ``"cyclical_sgld"``: ``sampler`` and ``batch_size`` as for SGLD, plus

    Attributes:
      num_cycles: cycles of the cosine step-size schedule.
      steps_per_cycle: sampler steps per cycle.
      exploration_fraction: share of every cycle spent exploring (noiseless steps).
      base: ``"sgld"`` or ``"sghmc"``, the kernel under the schedule.
      dynamics: the SGHMC dynamics of ``base="sghmc"`` (``SGHMCDynamics``).
      step_size: the peak (initial) step size of every cycle (a float).
      num_samples: draws kept per chain in all; ``num_samples / num_cycles`` per cycle, the last
        steps of the cycle, ``thinning`` apart.
      num_burnin: must be 0: the exploration phase of every cycle plays its part.
    """

    sampler: SamplerOptions = dataclasses.field(default_factory=SamplerOptions)
    dynamics: SGHMCDynamics = dataclasses.field(default_factory=SGHMCDynamics)
    step_size: StepSize = None
    batch_size: int | None = None
    num_cycles: int = 8
    steps_per_cycle: int = 2500
    exploration_fraction: float = 0.2
    base: str = "sgld"
    num_samples: int = 480
    num_burnin: int = 0
    thinning: int = 25

    def __post_init__(self):
        _check_sg(self)
        if self.num_burnin:
            raise ValueError("`num_burnin` does not apply to cyclical_sgld: the exploration "
                             "phase of every cycle plays its part.")
        check_choice("base", self.base, ("sgld", "sghmc"))
        if int(self.num_cycles) < 1 or int(self.steps_per_cycle) < 1:
            raise ValueError("`num_cycles` and `steps_per_cycle` must be >= 1; got "
                             f"{self.num_cycles}, {self.steps_per_cycle}.")
        if not 0.0 <= self.exploration_fraction < 1.0:
            raise ValueError("`exploration_fraction` must lie in [0, 1); got "
                             f"{self.exploration_fraction}.")
        if self.num_samples % self.num_cycles:
            raise ValueError(f"`num_samples` ({self.num_samples}) must be a multiple of "
                             f"`num_cycles` ({self.num_cycles}).")
        per_cycle = self.num_samples // self.num_cycles
        sampling = self.steps_per_cycle - int(np.ceil(self.exploration_fraction
                                                      * self.steps_per_cycle))
        if (per_cycle - 1) * self.thinning + 1 > sampling:
            raise ValueError(
                f"{per_cycle} draws per cycle, {self.thinning} steps apart, do not fit in the "
                f"{sampling} sampling steps of a cycle; lower `num_samples` or `thinning`, or "
                "raise `steps_per_cycle` or lower `exploration_fraction`.")

    def default_step_size(self, curvature: float) -> float:
        limit = 2.0 / curvature if self.base == "sgld" else 2.0 / float(np.sqrt(curvature))
        return CYCLICAL_PEAK_FACTOR * limit


SGOptions = SGLDOptions | SGHMCOptions | CyclicalOptions


def _check_sg(opts: SGOptions) -> None:
    check_draws(opts.num_samples, opts.thinning, opts.num_burnin)
    if opts.batch_size is not None and int(opts.batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1; got {opts.batch_size}.")
    if opts.step_size is not None and not callable(opts.step_size):
        check_positive("step_size", opts.step_size)


def resolved_batch_size(batch_size: int | None, num_data: int) -> int:
    """``batch_size`` (at most ``num_data``), or the default: full batch up to 2,048
    examples, else 128."""
    if batch_size is not None:
        return min(int(batch_size), num_data)
    return num_data if num_data <= 2048 else 128


def fit_sgld(key: jax.Array, network: Network, likelihood: Likelihood, data: Batch,
             options: SGLDOptions | None = None, **kwargs: Any) -> SamplePosterior:
    """SGLD with ``options`` (an ``SGLDOptions``, or its fields and those of
    ``SamplerOptions`` as keywords)."""
    opts = options if options is not None else options_from_kwargs(SGLDOptions, kwargs, "sgld")
    return _fit_sg("sgld", key, network, likelihood, data, opts, None)


def fit_sghmc(key: jax.Array, network: Network, likelihood: Likelihood, data: Batch,
              options: SGHMCOptions | None = None, **kwargs: Any) -> SamplePosterior:
    """SGHMC with ``options`` (an ``SGHMCOptions``, or its fields and those of the options
    it composes as keywords)."""
    opts = options if options is not None else options_from_kwargs(SGHMCOptions, kwargs,
                                                                   "sghmc")
    return _fit_sg("sghmc", key, network, likelihood, data, opts, opts.dynamics)


def fit_cyclical_sgld(key: jax.Array, network: Network, likelihood: Likelihood, data: Batch,
                      options: CyclicalOptions | None = None, **kwargs: Any) -> SamplePosterior:
    """Cyclical SG-MCMC (Zhang et al. 2020) with ``options`` (a ``CyclicalOptions``, or its
    fields and those of the options it composes as keywords)."""
    opts = options if options is not None else options_from_kwargs(CyclicalOptions, kwargs,
                                                                   "cyclical_sgld")
    dynamics = opts.dynamics if opts.base == "sghmc" else None
    return _fit_sg("cyclical_sgld", key, network, likelihood, data, opts, dynamics)


def _available_impl(name: str) -> str | None:
    try:
        jax.random.key(0, impl=name)
    except (ValueError, KeyError, TypeError):
        return None
    return name


# The PRNG of the kernels' noise. blackjax draws N(0, I) of the parameters' size at every step
# (every integration step for SGHMC) inside the scan; on CPU, jax's default threefry lowers
# to a rolled loop there and that draw costs several times the minibatch gradient of a small
# network. Philox 4x32-10 (Salmon et al. 2011, a counter-based generator of the same family,
# 64-bit keys) is markedly cheaper there. Its key is drawn from the step's threefry key, so
# the results stay a pure function of the user's key. None (jax without philox4x32): threefry.
KERNEL_KEY_IMPL = _available_impl("philox4x32")


def kernel_key(key: jax.Array) -> jax.Array:
    """The key handed to the blackjax kernel for one step: a ``KERNEL_KEY_IMPL`` key whose
    64 bits are drawn from ``key`` (``key`` itself where that implementation is missing)."""
    if KERNEL_KEY_IMPL is None:
        return key
    return jax.random.wrap_key_data(jax.random.bits(key, (2,), jnp.uint32), impl=KERNEL_KEY_IMPL)


def sg_step(kind: str, grad_fn: Callable, dynamics: SGHMCDynamics | None, batch_size: int,
            num_data: int):
    """One chain's step of blackjax's SGLD (``kind="sgld"``) or SGHMC kernel for a gradient
    estimator ``(params, batch) -> grad``, and what to draw for it in bulk:
    ``prepare(key) -> {"idx", "key"}`` (minibatch indices, drawn uniformly with replacement,
    and the kernel's key, see ``kernel_key``) and
    ``step(prepared, params, x, data) -> (params, {})``, one kernel step on that minibatch with
    this step's ``x["step_size"]``, ``x["temperature"]`` and (SGHMC) ``x["friction"]``: step
    sizes and friction are arguments of the compiled program, not constants in it. With
    ``batch_size >= num_data`` every step uses the whole data set."""
    full = batch_size >= num_data
    if kind == "sgld":
        kernel = blackjax.sgld.build_kernel()
        run = lambda key, position, batch, x: kernel(key, position, grad_fn, batch,
                                                     x["step_size"], x["temperature"])
    else:
        steps, beta = int(dynamics.num_integration_steps), float(dynamics.noise_estimate)

        def run(key, position, batch, x):
            kernel = blackjax.sghmc.build_kernel(x["friction"], beta)
            return kernel(key, position, grad_fn, batch, x["step_size"], steps, x["temperature"])

    def prepare(key: jax.Array) -> dict:
        k_batch, k_kernel = jax.random.split(key)
        idx = None if full else jax.random.randint(k_batch, (batch_size,), 0, num_data)
        return {"idx": idx, "key": kernel_key(k_kernel)}

    def step(prepared: dict, position: Params, x: dict, data: Batch):
        batch = data if full else jax.tree.map(lambda a: a[prepared["idx"]], data)
        return run(prepared["key"], position, batch, x), {}

    return prepare, step


def sg_schedule(method: str, opts: SGOptions, base: StepSize, friction: float | None = None
                ) -> Schedule:
    """Per-step ``slot``, ``sampling``, ``step_size`` and ``temperature`` arrays (and
    ``friction`` when it is given) for the step size (or step-size function) ``base``."""
    if method == "cyclical_sgld":
        sched = cyclical_schedule(opts, float(base) if not callable(base) else None)
    else:
        sched = keep_schedule(int(opts.num_burnin), int(opts.num_samples), int(opts.thinning))
        t = np.arange(len(sched["slot"]))
        size = base(t) if callable(base) else np.full(t.shape, base)
        sched["step_size"] = np.broadcast_to(np.asarray(size, np.float32), t.shape).copy()
        sched["temperature"] = np.full(t.shape, opts.sampler.temperature, np.float32)
    if not np.all(np.isfinite(sched["step_size"])) or np.any(sched["step_size"] < 0):
        raise ValueError("`step_size` must give finite step sizes >= 0 at every step.")
    if friction is not None:
        sched["friction"] = np.full(len(sched["slot"]), friction, np.float32)
    return sched


def cyclical_schedule(opts: CyclicalOptions, peak: float | None) -> Schedule:
    """The cSG-MCMC schedule: cosine step sizes, exploration at temperature 0, the last
    ``num_samples / num_cycles`` sampling steps of each cycle (``thinning`` apart) kept."""
    if peak is None:
        raise ValueError("`step_size` of cyclical_sgld is the peak of the cosine schedule: a "
                         "float, not a function.")
    length, cycles = int(opts.steps_per_cycle), int(opts.num_cycles)
    per_cycle = opts.num_samples // cycles
    t = np.arange(length * cycles)
    r = (t % length) / length
    explore = r < opts.exploration_fraction
    slot = np.full(t.shape, -1, np.int32)
    for k in range(cycles):
        last = (k + 1) * length - 1
        for j in range(per_cycle):
            slot[last - j * opts.thinning] = k * per_cycle + per_cycle - 1 - j
    return {
        "slot": slot,
        "sampling": ~explore,
        "step_size": (peak / 2 * (np.cos(np.pi * r) + 1)).astype(np.float32),
        "temperature": np.where(explore, 0.0, opts.sampler.temperature).astype(np.float32),
    }


ADVICE = {
    "rhat": "run longer (raise `num_burnin` and `num_samples`), or start the chains together "
            "(`init_positions`) if they sit in different modes",
    "ess": "raise `num_samples` (or `thinning`), or `step_size` if the chains move too slowly",
    "divergences": "lower `step_size`",
}
CYCLICAL_ADVICE = {
    "rhat": "raise `steps_per_cycle` (or `num_cycles`), or start the chains together "
            "(`init_positions`) if they sit in different modes",
    "ess": "raise `num_cycles` (or `num_chains`)",
    "divergences": "lower `step_size`",
}


def _fit_sg(method: str, key: jax.Array, network: Network, likelihood: Likelihood,
            data: Batch, opts: SGOptions, dynamics: SGHMCDynamics | None) -> SamplePosterior:
    """Run ``method`` (SGLD, or SGHMC when ``dynamics`` is given, under ``opts``'s schedule)."""
    n = int(data["x"].shape[0])
    sampler, c = opts.sampler, int(opts.sampler.num_chains)
    batch_size = resolved_batch_size(opts.batch_size, n)
    k_init, k_run = jax.random.split(key)
    position = initial_positions(k_init, network, likelihood, sampler, data, default_init="map")
    log_density = log_density_fn(network, likelihood, sampler.prior, n)
    curvature = None
    base = opts.step_size
    if base is None:
        curvature = float(max_curvature(log_density, position, data))
        if not np.isfinite(curvature) or curvature <= 0:
            raise ValueError(f"{method}: the curvature of the log posterior at the starting "
                             f"points is {curvature}; pass `step_size`.")
        base = opts.default_step_size(curvature)
    friction = None if dynamics is None else dynamics.resolved_friction(base)
    schedule = sg_schedule(method, opts, base, friction)

    # The chains run in the default float type (float64 under jax_enable_x64: blackjax's noise
    # comes in that type), the draws are stored in the model's own.
    dtype = jnp.result_type(float)
    shapes = tree_spec(position)
    state = init_loop_state(jax.tree.map(lambda a: a.astype(dtype), position), position, {},
                            int(opts.num_samples), c)
    checkpoint = None
    if sampler.checkpoint_dir is not None:
        run = run_fields(opts) | {"key": jax.random.key_data(key)}
        checkpoint = Checkpoint(sampler.checkpoint_dir, fingerprint(method, run, data))
        saved = checkpoint.load(state)
        state = state if saved is None else saved
    kind = "sgld" if dynamics is None else "sghmc"
    program_key = ("sg_run_chunk", kind, log_density, batch_size, n, c, shapes,
                   None if dynamics is None else (int(dynamics.num_integration_steps),
                                                  float(dynamics.noise_estimate)))
    run_chunk = memo(program_key, lambda: _build_run_chunk(kind, log_density, dynamics,
                                                           batch_size, n, c, position))
    peak = float(schedule["step_size"].max())
    state, timing = run_loop(state, run_chunk, k_run, data, schedule,
                             chunk_steps=sampler.chunk_steps, checkpoint=checkpoint,
                             progress=sampler.progress, callback=sampler.callback,
                             description=method,
                             nonfinite_hint=f"lower `step_size` (its peak was {peak:.3g})")
    info = {"timing": timing, "batch_size": batch_size, "num_steps": len(schedule["slot"]),
            "step_size_max": peak, "curvature": curvature,
            "temperature": float(sampler.temperature)}
    if friction is not None:
        info["friction"] = float(friction)
    advice = CYCLICAL_ADVICE if method == "cyclical_sgld" else ADVICE
    return assemble_posterior(method, network, likelihood, tuple(data["x"].shape[1:]), state,
                              int(schedule["sampling"].sum()), info, advice)


def _build_run_chunk(kind: str, log_density: Callable, dynamics: SGHMCDynamics | None,
                     batch_size: int, num_data: int, num_chains: int, template: Params):
    """The jitted chunk of ``kind``'s steps; draws are stored in ``template``'s dtypes."""
    dtypes = jax.tree.map(lambda a: a.dtype, template)
    to_model = lambda p: jax.tree.map(lambda a, t: a.astype(t), p, dtypes)
    prepare, step = sg_step(kind, jax.grad(log_density), dynamics, batch_size, num_data)
    return jax.jit(build_run_chunk(step, to_model, num_chains, prepare))
