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
from typing import Any

import blackjax
import jax
import jax.numpy as jnp
import numpy as np

from bdl._validation import check_choice, check_positive
from bdl.approximators._sample_posterior import SamplePosterior, assemble_posterior
from bdl.approximators._sampler_common import (
    SamplerOptions,
    initial_positions,
    log_density_fn,
    max_curvature,
    parse_options,
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
class SGLDOptions(SamplerOptions):
    """Options of ``"sgld"`` (and the fields every SG-MCMC method shares).

    Attributes:
      step_size: the Langevin step on the full-data log posterior (not on a per-example mean
        loss: ``step_size * N`` is the equivalent SGD learning rate). A float, or a function
        ``steps [T] -> step sizes [T]`` (numpy) for a schedule. Default (None):
        ``SGLD_STEP_FACTOR / curvature``, the curvature being the largest Hessian eigenvalue
        of the negative log posterior at the starting points (it scales with N); recorded in
        ``posterior.info["step_size_max"]`` and ``info["curvature"]``.
      batch_size: minibatch size (drawn with replacement each step); default as in training
        (full batch up to 2,048 examples, else 128). ``>= N`` gives exact gradients.
      num_burnin: steps discarded before the first kept draw.
    """

    step_size: StepSize = None
    batch_size: int | None = None
    num_burnin: int = 1000
    num_samples: int = 500
    thinning: int = 20

    def __post_init__(self):
        super().__post_init__()
        if self.num_burnin < 0:
            raise ValueError(f"`num_burnin` must be >= 0; got {self.num_burnin}.")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise ValueError(f"`batch_size` must be >= 1; got {self.batch_size}.")
        if self.step_size is not None and not callable(self.step_size):
            check_positive("step_size", self.step_size)

    def resolved_batch_size(self, num_data: int) -> int:
        if self.batch_size is not None:
            return min(int(self.batch_size), num_data)
        return num_data if num_data <= 2048 else 128

    def default_step_size(self, curvature: float) -> float:
        """The default step size for the largest curvature of the negative log posterior."""
        return SGLD_STEP_FACTOR / curvature


# friction x step size of SGHMC's default friction: the share of the momentum damped per step
DEFAULT_DAMPING = 0.2


@dataclasses.dataclass(frozen=True)
class SGHMCOptions(SGLDOptions):
    """Options of ``"sghmc"``: those of SGLD, plus

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
      step_size: the integration step; default (None) ``SGHMC_STEP_FACTOR / sqrt(curvature)``
        (see ``SGLDOptions.step_size``).
    """

    num_integration_steps: int = 10
    friction: float | None = None
    noise_estimate: float = 0.0
    num_burnin: int = 200
    num_samples: int = 500
    thinning: int = 4

    def __post_init__(self):
        super().__post_init__()
        if int(self.num_integration_steps) < 2:
            raise ValueError("`num_integration_steps` must be >= 2 (blackjax's SGHMC step moves "
                             f"the position before the first gradient); got "
                             f"{self.num_integration_steps}.")
        if self.friction is not None:
            check_positive("friction", self.friction)
        if self.noise_estimate < 0:
            raise ValueError(f"`noise_estimate` must be >= 0; got {self.noise_estimate}.")

    def default_step_size(self, curvature: float) -> float:
        return SGHMC_STEP_FACTOR / float(np.sqrt(curvature))

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
class CyclicalOptions(SGHMCOptions):
    """Options of ``"cyclical_sgld"``: those of SGLD (and of SGHMC for ``base="sghmc"``), plus

    Attributes:
      num_cycles: cycles of the cosine step-size schedule.
      steps_per_cycle: sampler steps per cycle.
      exploration_fraction: share of every cycle spent exploring (noiseless steps).
      base: ``"sgld"`` or ``"sghmc"``, the kernel under the schedule.
      step_size: the peak (initial) step size of every cycle.
      num_samples: draws kept per chain in all; ``num_samples / num_cycles`` per cycle, the last
        steps of the cycle, ``thinning`` apart.
    """

    num_cycles: int = 8
    steps_per_cycle: int = 2500
    exploration_fraction: float = 0.2
    base: str = "sgld"
    num_samples: int = 480
    num_burnin: int = 0
    thinning: int = 25

    def __post_init__(self):
        super().__post_init__()
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


def fit_sgld(key: jax.Array, network: Network, likelihood: Likelihood, data: Batch,
             **options: Any) -> SamplePosterior:
    """SGLD. Options: see ``SGLDOptions`` and ``SamplerOptions``."""
    opts = parse_options(SGLDOptions, options, "sgld")
    return _fit_sg("sgld", key, network, likelihood, data, opts, "sgld")


def fit_sghmc(key: jax.Array, network: Network, likelihood: Likelihood, data: Batch,
              **options: Any) -> SamplePosterior:
    """SGHMC. Options: see ``SGHMCOptions`` and ``SamplerOptions``."""
    opts = parse_options(SGHMCOptions, options, "sghmc")
    return _fit_sg("sghmc", key, network, likelihood, data, opts, "sghmc")


def fit_cyclical_sgld(key: jax.Array, network: Network, likelihood: Likelihood, data: Batch,
                      **options: Any) -> SamplePosterior:
    """Cyclical SG-MCMC (Zhang et al. 2020). Options: see ``CyclicalOptions``."""
    opts = parse_options(CyclicalOptions, options, "cyclical_sgld")
    return _fit_sg("cyclical_sgld", key, network, likelihood, data, opts, opts.base)


def sg_kernel(kind: str, grad_fn: Callable, opts: SGLDOptions) -> blackjax.base.SamplingAlgorithm:
    """The blackjax SGLD / SGHMC algorithm for a gradient estimator ``(params, batch) -> grad``."""
    if kind == "sgld":
        return blackjax.sgld(grad_fn)
    if opts.friction is None:
        raise ValueError("resolve the SGHMC friction before building the kernel")
    return blackjax.sghmc(grad_fn, int(opts.num_integration_steps), float(opts.friction),
                          float(opts.noise_estimate))


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


def sg_step(kernel: blackjax.base.SamplingAlgorithm, batch_size: int, num_data: int):
    """One chain's step and what to draw for it in bulk: ``prepare(key) -> {"idx", "key"}``
    (minibatch indices, drawn uniformly with replacement, and the kernel's key, see
    ``kernel_key``) and
    ``step(prepared, params, x, data) -> (params, {})``, one kernel step on that minibatch with
    this step's ``x["step_size"]`` and ``x["temperature"]``. With ``batch_size >= num_data``
    every step uses the whole data set."""
    full = batch_size >= num_data

    def prepare(key: jax.Array) -> dict:
        k_batch, k_kernel = jax.random.split(key)
        idx = None if full else jax.random.randint(k_batch, (batch_size,), 0, num_data)
        return {"idx": idx, "key": kernel_key(k_kernel)}

    def step(prepared: dict, position: Params, x: dict, data: Batch):
        batch = data if full else jax.tree.map(lambda a: a[prepared["idx"]], data)
        new = kernel.step(prepared["key"], position, batch, x["step_size"], x["temperature"])
        return new, {}

    return prepare, step


def sg_schedule(method: str, opts: SGLDOptions, base: StepSize) -> Schedule:
    """Per-step ``slot``, ``sampling``, ``step_size`` and ``temperature`` arrays for the step
    size (or step-size function) ``base``."""
    if method == "cyclical_sgld":
        sched = cyclical_schedule(opts, float(base) if not callable(base) else None)
    else:
        sched = keep_schedule(int(opts.num_burnin), int(opts.num_samples), int(opts.thinning))
        t = np.arange(len(sched["slot"]))
        size = base(t) if callable(base) else np.full(t.shape, base)
        sched["step_size"] = np.broadcast_to(np.asarray(size, np.float32), t.shape).copy()
        sched["temperature"] = np.full(t.shape, opts.temperature, np.float32)
    if not np.all(np.isfinite(sched["step_size"])) or np.any(sched["step_size"] < 0):
        raise ValueError("`step_size` must give finite step sizes >= 0 at every step.")
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
        "temperature": np.where(explore, 0.0, opts.temperature).astype(np.float32),
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
            data: Batch, opts: SGLDOptions, kind: str) -> SamplePosterior:
    n = int(data["x"].shape[0])
    batch_size = opts.resolved_batch_size(n)
    k_init, k_run = jax.random.split(key)
    position = jax.jit(lambda k: initial_positions(k, network, likelihood, opts))(k_init)
    log_density = log_density_fn(network, likelihood, opts.prior, n)
    curvature = None
    base = opts.step_size
    if base is None:
        curvature = float(jax.jit(max_curvature, static_argnums=0)(log_density, position, data))
        if not np.isfinite(curvature) or curvature <= 0:
            raise ValueError(f"{method}: the curvature of the log posterior at the starting "
                             f"points is {curvature}; pass `step_size`.")
        base = opts.default_step_size(curvature)
    if kind == "sghmc":
        opts = dataclasses.replace(opts, friction=opts.resolved_friction(base))
    kernel = sg_kernel(kind, jax.grad(log_density), opts)
    schedule = sg_schedule(method, opts, base)

    # The chains run in the default float type (float64 under jax_enable_x64: blackjax's noise
    # comes in that type), the draws are stored in the model's own.
    dtype = jnp.result_type(float)
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), position)
    to_model = lambda p: jax.tree.map(lambda a, t: a.astype(t.dtype), p, shapes)
    position = jax.tree.map(lambda a: a.astype(dtype), position)
    state = init_loop_state(position, to_model(position), {}, int(opts.num_samples),
                            int(opts.num_chains))
    checkpoint = None
    if opts.checkpoint_dir is not None:
        run = opts.run_fields() | {"key": jax.random.key_data(key)}
        checkpoint = Checkpoint(opts.checkpoint_dir, fingerprint(method, run, data))
        saved = checkpoint.load(state)
        state = state if saved is None else saved
    prepare, step = sg_step(kernel, batch_size, n)
    run_chunk = jax.jit(build_run_chunk(step, to_model, int(opts.num_chains), prepare))
    peak = float(schedule["step_size"].max())
    state, timing = run_loop(state, run_chunk, k_run, data, schedule,
                             chunk_steps=opts.chunk_steps, checkpoint=checkpoint,
                             progress=opts.progress, callback=opts.callback, description=method,
                             nonfinite_hint=f"lower `step_size` (its peak was {peak:.3g})")
    info = {"timing": timing, "batch_size": batch_size, "num_steps": len(schedule["slot"]),
            "step_size_max": peak, "curvature": curvature,
            "temperature": float(opts.temperature)}
    if kind == "sghmc":
        info["friction"] = float(opts.friction)
    advice = CYCLICAL_ADVICE if method == "cyclical_sgld" else ADVICE
    return assemble_posterior(method, network, likelihood, tuple(data["x"].shape[1:]), state,
                              int(schedule["sampling"].sum()), info, advice)
