"""Full-batch HMC and NUTS on blackjax, with Stan's window adaptation.

Each chain first runs ``blackjax.window_adaptation`` (``num_warmup`` steps: dual-averaging step
size towards ``target_acceptance_rate`` and a diagonal, or dense, mass matrix from expanding
windows), then ``num_samples * thinning`` steps of ``blackjax.hmc`` / ``blackjax.nuts`` with
its own adapted step size and mass matrix. Chains are vmapped (one compiled program); the
sampling phase runs in ``lax.scan`` chunks with checkpoints (see ``_sampling_loop``); the
warm-up is one compiled call, checkpointed when it ends.

The sampler works on the flat vector of all parameters (``ravel_pytree`` of ``{"net",
"lik"}``), so the integrator updates one array per leapfrog step whatever the network's
structure; draws are stored back as parameter trees.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.base import get_filter_adapt_info_fn
from blackjax.adaptation.step_size import find_reasonable_step_size
from blackjax.adaptation.window_adaptation import build_schedule
from jax.flatten_util import ravel_pytree

from bdl._validation import check_positive
from bdl.approximators._sample_posterior import SamplePosterior, assemble_posterior
from bdl.approximators._sampler_common import (
    SamplerOptions,
    initial_positions,
    log_density_fn,
    parse_options,
)
from bdl.approximators._sampling_loop import (
    Checkpoint,
    LoopState,
    build_run_chunk,
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
class HMCFamilyOptions(SamplerOptions):
    """Options ``"hmc"`` and ``"nuts"`` share.

    Attributes:
      num_warmup: window-adaptation steps per chain (0: no adaptation; ``step_size`` and a unit
        mass matrix are used as given).
      num_samples: draws kept per chain (after ``thinning``).
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

    num_samples: int = 1000
    num_warmup: int = 500
    target_acceptance_rate: float = 0.8
    step_size: float = 1.0
    find_step_size: bool = True
    dense_mass: bool | None = None

    def __post_init__(self):
        super().__post_init__()
        if int(self.num_warmup) < 0:
            raise ValueError(f"`num_warmup` must be >= 0; got {self.num_warmup}.")
        if not 0.0 < self.target_acceptance_rate < 1.0:
            raise ValueError("`target_acceptance_rate` must lie in (0, 1); got "
                             f"{self.target_acceptance_rate}.")
        check_positive("step_size", self.step_size)
        if self.dense_mass is not None and not isinstance(self.dense_mass, bool | np.bool_):
            raise ValueError("`dense_mass` must be True, False or None (decide by size); got "
                             f"{self.dense_mass!r}.")

    def kernel_parameters(self) -> dict[str, Any]:
        """Keyword arguments of the blackjax kernel besides step size and mass matrix."""
        return {}


@dataclasses.dataclass(frozen=True)
class NUTSOptions(HMCFamilyOptions):
    """Options of ``"nuts"``: the shared ones, plus

    Attributes:
      max_num_doublings: maximum tree depth (trajectories of at most 2^depth - 1 steps).
    """

    max_num_doublings: int = 10

    def __post_init__(self):
        super().__post_init__()
        if int(self.max_num_doublings) < 1:
            raise ValueError(f"`max_num_doublings` must be >= 1; got {self.max_num_doublings}.")

    def kernel_parameters(self) -> dict[str, Any]:
        return {"max_num_doublings": int(self.max_num_doublings)}


@dataclasses.dataclass(frozen=True)
class HMCOptions(HMCFamilyOptions):
    """Options of ``"hmc"``: the shared ones, plus

    Attributes:
      num_integration_steps: leapfrog steps per proposal (fixed trajectory length in steps).
      step_size_jitter: after warm-up, every step uses the adapted step size times a uniform
        factor in ``[1 - jitter, 1 + jitter]``: a fixed trajectory length can otherwise
        resonate with a (near-Gaussian) posterior's periods and mix badly.
    """

    num_integration_steps: int = 32
    step_size_jitter: float = 0.2

    def __post_init__(self):
        super().__post_init__()
        if int(self.num_integration_steps) < 1:
            raise ValueError("`num_integration_steps` must be >= 1; got "
                             f"{self.num_integration_steps}.")
        if not 0.0 <= self.step_size_jitter < 1.0:
            raise ValueError(f"`step_size_jitter` must lie in [0, 1); got {self.step_size_jitter}.")

    def kernel_parameters(self) -> dict[str, Any]:
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
             **options: Any) -> SamplePosterior:
    """NUTS with window adaptation. Options: see ``NUTSOptions`` and ``SamplerOptions``."""
    opts = parse_options(NUTSOptions, options, "nuts")
    return _fit_hmc_family("nuts", blackjax.nuts, key, network, likelihood, data, opts)


def fit_hmc(key: jax.Array, network: Network, likelihood: Likelihood, data: Batch,
            **options: Any) -> SamplePosterior:
    """HMC (fixed number of leapfrog steps) with window adaptation. Options: see
    ``HMCOptions`` and ``SamplerOptions``."""
    opts = parse_options(HMCOptions, options, "hmc")
    return _fit_hmc_family("hmc", blackjax.hmc, key, network, likelihood, data, opts)


def build_warmup(algorithm, log_density: Callable, opts: HMCFamilyOptions, num_params: int
                 ) -> Callable[[jax.Array, jax.Array, Batch], HMCChain]:
    """One chain's warm-up ``(key, flat position [P], data) -> HMCChain``."""
    extra = opts.kernel_parameters()

    def warmup(key: jax.Array, position: jax.Array, data: Batch) -> HMCChain:
        target = lambda p: log_density(p, data)
        if int(opts.num_warmup) == 0:
            imm = jnp.ones(num_params) if not opts.dense_mass else jnp.eye(num_params)
            return HMCChain(algorithm.init(position, target), jnp.float32(opts.step_size), imm)
        initial_step_size = jnp.float32(opts.step_size)
        if opts.find_step_size:
            key, k_search = jax.random.split(key)
            initial_step_size = reasonable_step_size(k_search, target, position, opts.step_size,
                                                     opts.target_acceptance_rate)
        adaptation = blackjax.window_adaptation(
            algorithm, target, is_mass_matrix_diagonal=not opts.dense_mass,
            initial_step_size=initial_step_size,
            target_acceptance_rate=float(opts.target_acceptance_rate),
            adaptation_info_fn=get_filter_adapt_info_fn(), **extra)
        (state, params), _ = adaptation.run(key, position, num_steps=int(opts.num_warmup))
        return HMCChain(state, jnp.asarray(params["step_size"], jnp.float32),
                        params["inverse_mass_matrix"])

    return warmup


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

    return find_reasonable_step_size(key, kernel_generator, state, jnp.float32(step_size),
                                     float(target_acceptance_rate))


def build_step(algorithm, log_density: Callable, opts: HMCFamilyOptions):
    """One chain's sampling step ``(key, HMCChain, x, data) -> (HMCChain, info)``; ``info``
    holds the ``STEP_INFO`` scalars (float32): acceptance rate, divergence (0/1), number of
    leapfrog steps and log density."""
    kernel = algorithm.build_kernel()
    extra = opts.kernel_parameters()
    jitter = float(getattr(opts, "step_size_jitter", 0.0))

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


def _aot(fn: Callable, timing: dict[str, float], *args: Any) -> Any:
    """``fn(*args)`` for a ``jax.jit`` function, its compilation timed apart (added to
    ``timing["compile_s"]``)."""
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    timing["compile_s"] += time.perf_counter() - t0
    return jax.block_until_ready(compiled(*args))


def _chain_template(opts: HMCFamilyOptions, num_params: int) -> HMCChain:
    """Shapes of C warmed-up chains (to restore a checkpoint without tracing the warm-up)."""
    c, p = int(opts.num_chains), num_params
    f32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
    state = blackjax.mcmc.hmc.HMCState(f32(c, p), f32(c), f32(c, p))
    return HMCChain(state, f32(c), f32(c, p, p) if opts.dense_mass else f32(c, p))


def _fit_hmc_family(method: str, algorithm, key: jax.Array, network: Network,
                    likelihood: Likelihood, data: Batch, opts: HMCFamilyOptions) -> SamplePosterior:
    n = int(data["x"].shape[0])

    @jax.jit
    def setup(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Flat starting points ``[C, P]``, warm-up keys ``[C]``, sampling key."""
        k_init, k_warm, k_run = jax.random.split(key, 3)
        start = initial_positions(k_init, network, likelihood, opts)
        flat = jax.vmap(lambda p: ravel_pytree(p)[0])(start)
        return flat, jax.random.split(k_warm, int(opts.num_chains)), k_run

    timing = {"compile_s": 0.0, "warmup_s": 0.0}
    flat_start, warm_keys, k_run = _aot(setup, timing, key)
    one = jax.eval_shape(lambda k: jax.tree.map(lambda a: a[0], initial_positions(
        k, network, likelihood, opts)), key)
    unravel = ravel_pytree(jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), one))[1]
    num_params = int(flat_start.shape[-1])
    opts = dataclasses.replace(opts, dense_mass=resolve_dense_mass(
        opts.dense_mass, num_params, int(opts.num_warmup)))
    tree_density = log_density_fn(network, likelihood, opts.prior, n)
    temperature = float(opts.temperature)
    log_density = lambda flat, batch: tree_density(unravel(flat), batch) / temperature

    step = build_step(algorithm, log_density, opts)
    warmup = jax.jit(jax.vmap(build_warmup(algorithm, log_density, opts, num_params),
                              in_axes=(0, 0, None)))

    @jax.jit
    def fresh_state(chains: HMCChain) -> LoopState:
        info = {k: jax.ShapeDtypeStruct((int(opts.num_chains),), jnp.float32)
                for k in STEP_INFO}
        return init_loop_state(chains, jax.vmap(unravel)(chains.state.position), info,
                               int(opts.num_samples))

    checkpoint, state = None, None
    if opts.checkpoint_dir is not None:
        run = opts.run_fields() | {"key": jax.random.key_data(key)}
        checkpoint = Checkpoint(opts.checkpoint_dir, fingerprint(method, run, data))
        template = jax.eval_shape(fresh_state, _chain_template(opts, num_params))
        state = checkpoint.load(template)
    if state is None:
        t0, compile_before = time.perf_counter(), timing["compile_s"]
        chains = _aot(warmup, timing, warm_keys, flat_start, data)
        timing["warmup_s"] = time.perf_counter() - t0 - (timing["compile_s"] - compile_before)
        state = _aot(fresh_state, timing, chains)
        if checkpoint is not None:
            checkpoint.save(state)
        if opts.callback is not None:
            opts.callback({"step": 0, "total_steps": 0, "phase": "warmup"})

    schedule = keep_schedule(0, int(opts.num_samples), int(opts.thinning))
    run_chunk = jax.jit(build_run_chunk(step, lambda c: jax.vmap(unravel)(c.state.position),
                                        int(opts.num_chains)))
    state, loop_timing = run_loop(state, run_chunk, k_run, data, schedule,
                                  chunk_steps=opts.chunk_steps, checkpoint=checkpoint,
                                  progress=opts.progress, callback=opts.callback,
                                  description=method)
    timing["compile_s"] += loop_timing["compile_s"]
    timing["sampling_s"] = loop_timing["run_s"]
    timing["compiled_chunk_lengths"] = loop_timing["compiled_chunk_lengths"]
    timing["run_s"] = timing["warmup_s"] + timing["sampling_s"]
    info = {"timing": timing, "num_params": num_params, "temperature": temperature,
            "dense_mass": bool(opts.dense_mass),
            "step_size": jax.device_get(state.chain.step_size).tolist()}
    return assemble_posterior(method, network, likelihood, tuple(data["x"].shape[1:]), state,
                              len(schedule["slot"]), info)
