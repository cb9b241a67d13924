"""Full-batch HMC and NUTS on blackjax, with Stan's window adaptation.

Each chain first runs ``blackjax.window_adaptation`` (``num_warmup`` steps: dual-averaging step
size towards ``target_acceptance_rate`` and a diagonal, or dense, mass matrix from expanding
windows), then ``num_samples * thinning`` steps of ``blackjax.hmc`` / ``blackjax.nuts`` with
its own adapted step size and mass matrix. Chains are vmapped (one compiled program); the
warm-up and the sampling phase run in the shared loop's ``lax.scan`` chunks, with progress and
checkpoints (see ``_sampling_loop``). The programs are memoised per configuration
(``_programs``): a repeated identical fit compiles nothing.

The sampler works on the flat vector of all parameters (``ravel_pytree`` of ``{"net",
"lik"}``), so the integrator updates one array per leapfrog step whatever the network's
structure; draws are stored back as parameter trees.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
from blackjax.adaptation.step_size import dual_averaging_adaptation, find_reasonable_step_size
from blackjax.adaptation.window_adaptation import build_schedule
from jax.flatten_util import ravel_pytree

from bdl._cache import memo
from bdl._validation import check_positive
from bdl.approximators._method import options_from_kwargs
from bdl.approximators._sample_posterior import SamplePosterior, assemble_posterior
from bdl.approximators._sampler_common import (
    SamplerOptions,
    check_draws,
    initial_positions,
    log_density_fn,
    run_fields,
    tree_spec,
)
from bdl.approximators._sampling_loop import (
    Checkpoint,
    LoopState,
    build_run_chunk,
    compiled,
    fingerprint,
    init_loop_state,
    keep_schedule,
    run_loop,
)
from bdl.likelihoods import Likelihood
from bdl.models import Network
from bdl.training import Batch


class HMCChain(NamedTuple):
    """One chain of HMC/NUTS.

    Attributes:
      state: blackjax's ``HMCState`` (flat position ``[P]``, its log density and gradient).
      step_size: the chain's adapted step size (scalar).
      inverse_mass_matrix: its adapted inverse mass matrix, ``[P]`` (diagonal) or ``[P, P]``.
    """

    state: blackjax.mcmc.hmc.HMCState
    step_size: jax.Array
    inverse_mass_matrix: jax.Array


@dataclasses.dataclass(frozen=True)
class WarmupOptions:
    """Stan's window adaptation, as ``"hmc"`` and ``"nuts"`` run it (composed into their
    options as the field ``warmup``; its fields are keywords too).

    Attributes:
      num_warmup: window-adaptation steps per chain (0: no adaptation; ``step_size`` and a unit
        mass matrix are used as given).
      target_acceptance_rate: what the step-size adaptation aims for.
      step_size: initial step size of the adaptation (the step size when ``num_warmup=0``).
      find_step_size: before the warm-up, search a reasonable first step size from
        ``step_size`` (doubling / halving until a one-step proposal's acceptance crosses
        ``target_acceptance_rate``; blackjax's ``find_reasonable_step_size``), as Stan and
        numpyro do; blackjax's window adaptation alone starts from ``step_size``.
      dense_mass: adapt a dense mass matrix (``True``) or a diagonal one (``False``). ``None``
        (default) decides by size: dense when the last slow adaptation window holds at least
        ``DENSE_DRAWS_PER_PARAM`` draws per parameter (500 warm-up steps: up to 100
        parameters), since only then is a full covariance estimate worth more than its noise;
        diagonal otherwise. Small networks' weights are strongly correlated (hidden-unit
        scales trade off against output weights), and a dense metric samples them several
        times more efficiently: see ``bench/sampling_speed.py``. The choice is recorded in
        ``posterior.info["dense_mass"]``.
    """

    num_warmup: int = 500
    target_acceptance_rate: float = 0.8
    step_size: float = 1.0
    find_step_size: bool = True
    dense_mass: bool | None = None

    composable: ClassVar[bool] = True

    def __post_init__(self):
        if int(self.num_warmup) < 0:
            raise ValueError(f"`num_warmup` must be >= 0; got {self.num_warmup}.")
        if not 0.0 < self.target_acceptance_rate < 1.0:
            raise ValueError("`target_acceptance_rate` must lie in (0, 1); got "
                             f"{self.target_acceptance_rate}.")
        check_positive("step_size", self.step_size)
        if self.dense_mass is not None and not isinstance(self.dense_mass, bool | np.bool_):
            raise ValueError("`dense_mass` must be True, False or None (decide by size); got "
                             f"{self.dense_mass!r}.")


@dataclasses.dataclass(frozen=True)
class NUTSOptions:
    """Options of ``"nuts"``.

    Attributes:
      sampler: how the chains run (``SamplerOptions``; its fields are keywords too).
      warmup: the window adaptation (``WarmupOptions``: ``num_warmup``, ``step_size``,
        ``target_acceptance_rate``, ``find_step_size``, ``dense_mass``).
      num_samples: draws kept per chain (after ``thinning``).
      thinning: keep one step in ``thinning`` after the warm-up.
      max_num_doublings: maximum tree depth (trajectories of at most 2^depth - 1 steps).
        Default 7 (127 steps; numpyro's and Stan's 10 allow 1,023): a posterior that needs
        longer trajectories (a neural network's, whose stiff and flat directions differ by
        orders of magnitude) costs 8x less per step and gets a DiagnosticsWarning (small ESS)
        naming this option, instead of running for tens of minutes; on a 1,000 x 8 regression
        with ``bdl.models.MLP()`` every step hit depth 10 (see the timing in the report of
        the change that set it).
    """

    sampler: SamplerOptions = dataclasses.field(default_factory=SamplerOptions)
    warmup: WarmupOptions = dataclasses.field(default_factory=WarmupOptions)
    num_samples: int = 1000
    thinning: int = 1
    max_num_doublings: int = 7

    def __post_init__(self):
        check_draws(self.num_samples, self.thinning)
        if int(self.max_num_doublings) < 1:
            raise ValueError(f"`max_num_doublings` must be >= 1; got {self.max_num_doublings}.")

    def kernel_parameters(self) -> dict[str, Any]:
        """Keyword arguments of the blackjax kernel besides step size and mass matrix."""
        return {"max_num_doublings": int(self.max_num_doublings)}


@dataclasses.dataclass(frozen=True)
class HMCOptions:
    """Options of ``"hmc"``: ``sampler``, ``warmup``, ``num_samples`` and ``thinning`` as for
    NUTS, plus

    Attributes:
      num_integration_steps: leapfrog steps per proposal (fixed trajectory length in steps).
      step_size_jitter: after warm-up, every step uses the adapted step size times a uniform
        factor in ``[1 - jitter, 1 + jitter]``: a fixed trajectory length can otherwise
        resonate with a (near-Gaussian) posterior's periods and mix badly.
    """

    sampler: SamplerOptions = dataclasses.field(default_factory=SamplerOptions)
    warmup: WarmupOptions = dataclasses.field(default_factory=WarmupOptions)
    num_samples: int = 1000
    thinning: int = 1
    num_integration_steps: int = 32
    step_size_jitter: float = 0.2

    def __post_init__(self):
        check_draws(self.num_samples, self.thinning)
        if int(self.num_integration_steps) < 1:
            raise ValueError("`num_integration_steps` must be >= 1; got "
                             f"{self.num_integration_steps}.")
        if not 0.0 <= self.step_size_jitter < 1.0:
            raise ValueError(f"`step_size_jitter` must lie in [0, 1); got {self.step_size_jitter}.")

    def kernel_parameters(self) -> dict[str, Any]:
        """Keyword arguments of the blackjax kernel besides step size and mass matrix."""
        return {"num_integration_steps": int(self.num_integration_steps)}


DENSE_DRAWS_PER_PARAM = 2


def last_slow_window(num_warmup: int) -> int:
    """Draws in the last slow (mass-matrix) window of Stan's warm-up schedule (0 if none)."""
    if int(num_warmup) == 0:
        return 0
    schedule = np.asarray(build_schedule(int(num_warmup)))
    ends = np.flatnonzero(schedule[:, 1])
    if len(ends) == 0:
        return 0
    start = int(ends[-2]) + 1 if len(ends) > 1 else int(np.flatnonzero(schedule[:, 0])[0])
    return int(ends[-1]) - start + 1


def resolve_dense_mass(dense_mass: bool | None, num_params: int, num_warmup: int) -> bool:
    """The mass-matrix choice: ``dense_mass`` itself, or the size rule when it is ``None``."""
    if dense_mass is not None:
        return bool(dense_mass)
    window = last_slow_window(num_warmup)
    return window > 0 and DENSE_DRAWS_PER_PARAM * int(num_params) <= window


def fit_nuts(key: jax.Array, network: Network, likelihood: Likelihood, data: Batch,
             options: NUTSOptions | None = None, **kwargs: Any) -> SamplePosterior:
    """NUTS with window adaptation, with ``options`` (a ``NUTSOptions``, or its fields and
    those of the options it composes as keywords)."""
    opts = options if options is not None else options_from_kwargs(NUTSOptions, kwargs, "nuts")
    return _fit_hmc_family("nuts", key, network, likelihood, data, opts)


def fit_hmc(key: jax.Array, network: Network, likelihood: Likelihood, data: Batch,
            options: HMCOptions | None = None, **kwargs: Any) -> SamplePosterior:
    """HMC (fixed number of leapfrog steps) with window adaptation, with ``options`` (an
    ``HMCOptions``, or its fields and those of the options it composes as keywords)."""
    opts = options if options is not None else options_from_kwargs(HMCOptions, kwargs, "hmc")
    return _fit_hmc_family("hmc", key, network, likelihood, data, opts)


class WarmupChain(NamedTuple):
    """One chain during Stan's window adaptation (blackjax's dual averaging and mass-matrix
    adaptation, stepped by the shared sampling loop so that the warm-up shows progress, is
    checkpointed and resumes like the sampling phase).

    Attributes:
      state: blackjax's ``HMCState`` (flat position ``[P]``).
      step_size_state: the dual-averaging state of the step size.
      mass_state: the Welford state of the current slow window's mass-matrix estimate.
      step_size: the step size of the next step (scalar).
      inverse_mass_matrix: the inverse mass matrix of the next step, ``[P]`` or ``[P, P]``.
    """

    state: blackjax.mcmc.hmc.HMCState
    step_size_state: Any
    mass_state: Any
    step_size: jax.Array
    inverse_mass_matrix: jax.Array


def warmup_schedule(num_warmup: int) -> dict[str, np.ndarray]:
    """Stan's warm-up windows as loop schedule entries: ``slow`` (the step adapts the mass
    matrix too) and ``window_end`` (the mass matrix is recomputed after the step)."""
    sched = np.asarray(build_schedule(int(num_warmup))).reshape(-1, 2)
    t = len(sched)
    return {"slot": np.full(t, -1, np.int32), "sampling": np.zeros(t, bool),
            "slow": sched[:, 0].astype(bool), "window_end": sched[:, 1].astype(bool)}


def build_warmup(algorithm, log_density: Callable, opts: WarmupOptions,
                 kernel_parameters: dict[str, Any], num_params: int, dtype
                 ) -> tuple[Callable, Callable, Callable]:
    """One chain's window adaptation as ``(init, step, finish)``:
    ``init(key, flat position [P], data) -> WarmupChain`` (with blackjax's
    ``find_reasonable_step_size`` when ``opts.find_step_size``), the loop step
    ``step(key, WarmupChain, x, data) -> (WarmupChain, info)`` and
    ``finish(WarmupChain) -> HMCChain`` (the averaged step size, the last window's mass
    matrix). The same algorithm as ``blackjax.window_adaptation`` (Stan's schedule), built from
    blackjax's ``dual_averaging_adaptation`` and ``mass_matrix_adaptation``; ``opts.dense_mass``
    must be resolved (a bool), ``kernel_parameters`` are the kernel's other keywords.

    Every float is in ``dtype`` (the flat position's: float64 under ``jax_enable_x64``), so the
    adaptation's branches agree on their types.
    """
    extra = kernel_parameters
    kernel = algorithm.build_kernel()
    da_init, da_update, da_final = dual_averaging_adaptation(float(opts.target_acceptance_rate))
    mm_init, mm_update, mm_final = mass_matrix_adaptation(not opts.dense_mass)
    as_float = lambda a: jnp.asarray(a, dtype)

    def init(key: jax.Array, position: jax.Array, data: Batch) -> WarmupChain:
        target = lambda p: log_density(p, data)
        step_size = as_float(opts.step_size)
        if opts.find_step_size:
            step_size = as_float(reasonable_step_size(key, target, position, step_size,
                                                      opts.target_acceptance_rate))
        mass = jax.tree.map(as_float, mm_init(num_params))
        return WarmupChain(algorithm.init(position, target), jax.tree.map(
            as_float, da_init(step_size)), mass, step_size, mass.inverse_mass_matrix)

    def step(key: jax.Array, chain: WarmupChain, x: dict, data: Batch):
        state, info = kernel(key, chain.state, lambda p: log_density(p, data), chain.step_size,
                             chain.inverse_mass_matrix, **extra)
        ss = jax.tree.map(as_float, da_update(chain.step_size_state,
                                              as_float(info.acceptance_rate)))
        mass = jax.lax.cond(x["slow"], lambda m: jax.tree.map(
            as_float, mm_update(m, state.position)), lambda m: m, chain.mass_state)
        chain = WarmupChain(state, ss, mass, jnp.exp(ss.log_step_size),
                            chain.inverse_mass_matrix)

        def window_end(c: WarmupChain) -> WarmupChain:  # Stan: new metric, step size restart
            m = jax.tree.map(as_float, mm_final(c.mass_state))
            restart = jax.tree.map(as_float, da_init(da_final(c.step_size_state)))
            return WarmupChain(c.state, restart, m, jnp.exp(restart.log_step_size),
                               m.inverse_mass_matrix)

        chain = jax.lax.cond(x["window_end"], window_end, lambda c: c, chain)
        return chain, {}

    def finish(chain: WarmupChain) -> HMCChain:
        return HMCChain(chain.state, as_float(jnp.exp(chain.step_size_state.log_step_size_avg)),
                        chain.inverse_mass_matrix)

    return init, step, finish


STEP_INFO = ("acceptance_rate", "diverging", "num_integration_steps", "logdensity")


def reasonable_step_size(key: jax.Array, target: Callable, position: jax.Array,
                         step_size: float | jax.Array, target_acceptance_rate: float,
                         inverse_mass_matrix: jax.Array | None = None) -> jax.Array:
    """blackjax's ``find_reasonable_step_size`` from ``step_size``, with one-leapfrog HMC under
    ``inverse_mass_matrix`` (``[P]`` or ``[P, P]``; default: unit) at flat ``position [P]``."""
    kernel = blackjax.hmc.build_kernel()
    state = blackjax.hmc.init(position, target)
    imm = jnp.ones_like(position) if inverse_mass_matrix is None else inverse_mass_matrix

    def kernel_generator(eps):
        return lambda k, s: kernel(k, s, target, eps, imm, 1)

    return find_reasonable_step_size(key, kernel_generator, state,
                                     jnp.asarray(step_size, position.dtype),
                                     float(target_acceptance_rate))


def build_step(algorithm, log_density: Callable, kernel_parameters: dict[str, Any],
               jitter: float = 0.0):
    """One chain's sampling step ``(key, HMCChain, x, data) -> (HMCChain, info)``; ``info``
    holds the ``STEP_INFO`` scalars (float32): acceptance rate, divergence (0/1), number of
    leapfrog steps and log density. ``jitter`` > 0 draws every step's step size uniformly in
    ``[1 - jitter, 1 + jitter]`` times the chain's."""
    kernel = algorithm.build_kernel()
    extra = kernel_parameters
    jitter = float(jitter)

    def step(key: jax.Array, chain: HMCChain, x: dict, data: Batch):
        del x
        step_size = chain.step_size
        if jitter:
            key, k_jitter = jax.random.split(key)
            step_size = step_size * (1.0 + jitter * jax.random.uniform(k_jitter, (), minval=-1.0))
        state, info = kernel(key, chain.state, lambda p: log_density(p, data), step_size,
                             chain.inverse_mass_matrix, **extra)
        stats = {
            "acceptance_rate": jnp.asarray(info.acceptance_rate, jnp.float32),
            "diverging": jnp.asarray(info.is_divergent, jnp.float32),
            "num_integration_steps": jnp.asarray(info.num_integration_steps, jnp.float32),
            "logdensity": jnp.asarray(state.logdensity, jnp.float32),
        }
        return chain._replace(state=state), stats

    return step


ADVICE = {
    "rhat": "raise `num_warmup` and `num_samples`, or start the chains together "
            "(`init_positions`) if they sit in different modes",
    "ess": "raise `num_samples` (and `num_warmup`){more_steps}",
    "divergences": "raise `target_acceptance_rate` (e.g. 0.95) for smaller steps, or "
                   "`num_warmup`",
}


def _aot(fn: Callable, timing: dict[str, float], *args: Any) -> Any:
    """``fn(*args)`` for a ``jax.jit`` function, its compilation (memoised, see
    ``_sampling_loop.compiled``) timed apart (added to ``timing["compile_s"]``)."""
    t0 = time.perf_counter()
    program = compiled(fn, *args)
    timing["compile_s"] += time.perf_counter() - t0
    return jax.block_until_ready(program(*args))


class Programs(NamedTuple):
    """The jitted programs of one HMC/NUTS configuration (memoised: ``_programs``).

    Attributes:
      flatten: ``tree positions [C, ...] -> flat positions [C, P]`` in the sampler's dtype.
      fresh_warmup: ``(keys [C], flat [C, P], data) -> LoopState`` of the warm-up.
      fresh_state: ``LoopState of the warm-up -> LoopState`` of the sampling phase.
      run_warm: the warm-up's loop chunk.
      run_chunk: the sampling phase's loop chunk.
    """

    flatten: Callable
    fresh_warmup: Callable
    fresh_state: Callable
    run_warm: Callable
    run_chunk: Callable


def _programs(method: str, log_density: Callable, template: Any, warmup: WarmupOptions,
              kernel_parameters: dict[str, Any], jitter: float, num_chains: int,
              num_samples: int, temperature: float, dtype) -> Programs:
    """The programs for these settings, built once per process for each distinct setting
    (``bdl._cache``); ``template`` is one chain's parameter tree (``ShapeDtypeStruct``s)."""
    key = ("hmc_programs", method, log_density, tree_spec(template), warmup,
           tuple(sorted(kernel_parameters.items())), float(jitter), int(num_chains),
           int(num_samples), float(temperature), jnp.dtype(dtype))
    return memo(key, lambda: _build_programs(method, log_density, template, warmup,
                                             kernel_parameters, jitter, num_chains,
                                             num_samples, temperature, dtype))


def _build_programs(method, tree_density, template, warmup, kernel_parameters, jitter, c,
                    num_samples, temperature, dtype) -> Programs:
    algorithm = blackjax.nuts if method == "nuts" else blackjax.hmc
    unravel = ravel_pytree(jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), template))[1]
    num_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(template))
    log_density = lambda flat, batch: (tree_density(unravel(flat), batch) / temperature
                                       ).astype(dtype)
    step = build_step(algorithm, log_density, kernel_parameters, jitter)
    warm_init, warm_step, warm_finish = build_warmup(algorithm, log_density, warmup,
                                                     kernel_parameters, num_params, dtype)
    positions = lambda chains: jax.vmap(unravel)(chains.state.position)

    def flatten(tree):
        return jax.vmap(lambda p: ravel_pytree(p)[0])(tree).astype(dtype)

    def fresh_warmup(keys: jax.Array, flat: jax.Array, data: Batch) -> LoopState:
        chains = jax.vmap(warm_init, in_axes=(0, 0, None))(keys, flat, data)
        return init_loop_state(chains, {}, {}, 0, c)

    def fresh_state(warm: LoopState) -> LoopState:
        if int(warmup.num_warmup) == 0:  # no adaptation: `step_size` and a unit metric
            unit = (jnp.eye(num_params, dtype=dtype) if warmup.dense_mass
                    else jnp.ones(num_params, dtype))
            chains = HMCChain(warm.chain.state, jnp.full((c,), warmup.step_size, dtype),
                              jnp.broadcast_to(unit, (c, *unit.shape)))
        else:
            chains = jax.vmap(warm_finish)(warm.chain)
        info = {k: jax.ShapeDtypeStruct((c,), jnp.float32) for k in STEP_INFO}
        return init_loop_state(chains, positions(chains), info, int(num_samples), c)

    return Programs(jax.jit(flatten), jax.jit(fresh_warmup), jax.jit(fresh_state),
                    jax.jit(build_run_chunk(warm_step, positions, c)),
                    jax.jit(build_run_chunk(step, positions, c)))


def _fit_hmc_family(method: str, key: jax.Array, network: Network, likelihood: Likelihood,
                    data: Batch, opts: HMCOptions | NUTSOptions) -> SamplePosterior:
    n = int(data["x"].shape[0])
    sampler, c = opts.sampler, int(opts.sampler.num_chains)
    dtype = jnp.result_type(float)  # float64 under jax_enable_x64, else float32
    timing = {"compile_s": 0.0, "warmup_s": 0.0}
    k_init, k_search, k_warm, k_run = jax.random.split(key, 4)
    start = initial_positions(k_init, network, likelihood, sampler)
    search_keys = jax.random.split(k_search, c)
    template = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), start)
    num_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(template))
    num_warmup = int(opts.warmup.num_warmup)
    warmup = dataclasses.replace(  # no step-size search without a warm-up
        opts.warmup, dense_mass=resolve_dense_mass(opts.warmup.dense_mass, num_params,
                                                   num_warmup),
        find_step_size=bool(opts.warmup.find_step_size and num_warmup > 0))
    programs = _programs(method, log_density_fn(network, likelihood, sampler.prior, n),
                         template, warmup, opts.kernel_parameters(),
                         getattr(opts, "step_size_jitter", 0.0), c, opts.num_samples,
                         sampler.temperature, dtype)
    flat_start = _aot(programs.flatten, timing, start)

    checkpoint = warm_checkpoint = state = None
    if sampler.checkpoint_dir is not None:
        run = run_fields(opts) | {"key": jax.random.key_data(key)}
        checkpoint = Checkpoint(sampler.checkpoint_dir, fingerprint(method, run, data))
        warm_checkpoint = Checkpoint(Path(sampler.checkpoint_dir) / "warmup",
                                     checkpoint.fingerprint)
    warm_template = jax.eval_shape(programs.fresh_warmup, search_keys, flat_start, data)
    if checkpoint is not None:
        state = checkpoint.load(jax.eval_shape(programs.fresh_state, warm_template))
    if state is None:
        warm = warm_checkpoint.load(warm_template) if warm_checkpoint is not None else None
        if warm is None:
            warm = _aot(programs.fresh_warmup, timing, search_keys, flat_start, data)
        if num_warmup > 0:
            warm, warm_timing = run_loop(
                warm, programs.run_warm, k_warm, data, warmup_schedule(num_warmup),
                chunk_steps=sampler.chunk_steps, checkpoint=warm_checkpoint,
                progress=sampler.progress, callback=sampler.callback,
                description=f"{method} warm-up", phase="warmup", nonfinite_hint=NONFINITE)
            timing["compile_s"] += warm_timing["compile_s"]
            timing["warmup_s"] = warm_timing["run_s"]
        state = _aot(programs.fresh_state, timing, warm)
        if checkpoint is not None:
            checkpoint.save(state)

    schedule = keep_schedule(0, int(opts.num_samples), int(opts.thinning))
    state, loop_timing = run_loop(state, programs.run_chunk, k_run, data, schedule,
                                  chunk_steps=sampler.chunk_steps, checkpoint=checkpoint,
                                  progress=sampler.progress, callback=sampler.callback,
                                  description=method, nonfinite_hint=NONFINITE)
    timing["compile_s"] += loop_timing["compile_s"]
    timing["sampling_s"] = loop_timing["run_s"]
    timing["compiled_chunk_lengths"] = loop_timing["compiled_chunk_lengths"]
    timing["run_s"] = timing["warmup_s"] + timing["sampling_s"]
    info = {"timing": timing, "num_params": num_params,
            "temperature": float(sampler.temperature), "dense_mass": bool(warmup.dense_mass),
            "step_size": jax.device_get(state.chain.step_size).tolist()}
    more = (", or `max_num_doublings` (longer trajectories)" if method == "nuts"
            else ", or `num_integration_steps`")
    advice = {**ADVICE, "ess": ADVICE["ess"].format(more_steps=more)}
    return assemble_posterior(method, network, likelihood, tuple(data["x"].shape[1:]), state,
                              len(schedule["slot"]), info, advice)


NONFINITE = ("the log density or its gradient overflowed; check the scale of the data and of "
             "`prior`, or lower `step_size`")
