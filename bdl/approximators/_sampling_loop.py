"""The sampling loop every MCMC method shares: ``lax.scan`` chunks and a thin host loop.

A sampler is a per-chain step ``step_fn(key, chain_state, x, data) -> (chain_state, info)``
(``x``: this step's entries of a host-built schedule, ``info``: a dict of scalars). The loop

- vmaps the step over ``C`` chains (one compiled program for all of them);
- derives the key of step ``s`` as ``fold_in(key, s)``, so the draws do not depend on how the
  steps are cut into chunks, and a run resumed from a checkpoint equals an uninterrupted one;
- writes the positions of the steps the schedule keeps (``x["slot"] >= 0``: burn-in and
  thinning are just which steps keep) into a preallocated buffer ``[C, K, ...]``, next to the
  step's info, and sums the info over the sampling steps (``x["sampling"]``);
- records, per chain, the first step at which its position became NaN/inf; the host loop
  then raises ``bdl.NonFiniteError`` naming that step (no NaN parameters are ever returned);
- runs ``chunk_steps`` steps per jitted call (default about ``DEFAULT_CHUNK_STEPS``, so the
  progress bar moves at step granularity); the host loop between calls shows progress (with
  the compile time apart), writes checkpoints (atomically) and calls the user's ``callback``.

Programs are compiled ahead of time through ``compiled`` (memoised, ``bdl._cache``): a
repeated run of the same program on arguments of the same types compiles nothing.

A phase with nothing to keep (the HMC/NUTS warm-up) is the same loop with an empty ``draws``
tree.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from bdl._cache import memo
from bdl._host import atomic_write
from bdl._warnings import NonFiniteError
from bdl.models import Params
from bdl.training import Batch
from bdl.training._driver import drive

Schedule = dict[str, np.ndarray]  # name -> [total_steps] per-step values
StepFn = Callable[[jax.Array, Any, dict, Batch], tuple[Any, dict]]


class LoopState(NamedTuple):
    """State of C chains in the sampling loop (the unit of checkpointing).

    Attributes:
      chain: the kernels' per-chain state, leading axis ``[C]`` (SG-MCMC: the position;
        HMC/NUTS: the HMC state with the chain's adapted step size and mass matrix).
      draws: kept positions ``{"net", "lik"}``, each leaf ``[C, K, ...]`` (K kept draws).
      draw_info: per-draw scalars of the step that produced each draw, name -> ``[C, K]``.
      totals: sums of the per-step scalars over all sampling steps, name -> ``[C]``.
      step: number of steps done (int32 scalar).
      nonfinite: per chain, the first step whose position held NaN/inf (-1: none), ``[C]``.
    """

    chain: Any
    draws: Params
    draw_info: dict[str, jax.Array]
    totals: dict[str, jax.Array]
    step: jax.Array
    nonfinite: jax.Array


DEFAULT_CHUNK_STEPS = 50


def default_chunk_steps(total: int, target: int = DEFAULT_CHUNK_STEPS) -> int:
    """Steps per chunk: a divisor of ``total`` near ``target`` (one compiled chunk length),
    else ``target`` (a shorter last chunk, compiled once more)."""
    total = int(total)
    if total <= target:
        return max(total, 1)
    for d in sorted(range(target // 2, 2 * target + 1), key=lambda d: (abs(d - target), d)):
        if total % d == 0:
            return d
    return target


def init_loop_state(chain: Any, position: Params, info: dict[str, jax.Array],
                    num_draws: int, num_chains: int) -> LoopState:
    """Fresh loop state. ``position`` ``[C, ...]`` and ``info`` (name -> ``[C]``) are only
    templates for the buffers' shapes and dtypes (arrays or ``jax.ShapeDtypeStruct``);
    ``num_draws=0`` keeps nothing (``draws`` is then an empty tree)."""
    buf = lambda a: jnp.zeros((a.shape[0], num_draws, *a.shape[1:]), a.dtype)
    return LoopState(
        chain=chain,
        draws=jax.tree.map(buf, position) if num_draws else {},
        draw_info={k: buf(v) for k, v in info.items()} if num_draws else {},
        totals={k: jnp.zeros(v.shape, v.dtype) for k, v in info.items()},
        step=jnp.zeros((), jnp.int32),
        nonfinite=jnp.full((int(num_chains),), -1, jnp.int32),
    )


def all_finite(tree: Any) -> jax.Array:
    """``[C]``: whether every value of chain c in ``tree`` (leaves ``[C, ...]``) is finite."""
    leaves = [jnp.all(jnp.isfinite(a.reshape(a.shape[0], -1)), axis=1)
              for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves), axis=0)


def keep_schedule(num_burnin: int, num_draws: int, thinning: int) -> Schedule:
    """Burn-in, then keep the last step of every block of ``thinning`` steps.

    Returns ``{"slot": [T] int32 (-1: not kept), "sampling": [T] bool}`` with
    ``T = num_burnin + num_draws * thinning``.
    """
    t = np.arange(num_burnin + num_draws * thinning)
    after = t - num_burnin
    kept = (after >= 0) & ((after + 1) % thinning == 0)
    return {"slot": np.where(kept, after // thinning, -1).astype(np.int32),
            "sampling": after >= 0}


def build_run_chunk(step_fn: StepFn, position_fn: Callable[[Any], Params], num_chains: int,
                    prepare: Callable[[jax.Array], Any] | None = None
                    ) -> Callable[[LoopState, jax.Array, Batch, Schedule], LoopState]:
    """``run_chunk(state, key, data, xs)``: ``lax.scan`` of the vmapped step over the schedule
    entries ``xs`` (each ``[n]``). Pure; ``jax.jit`` it (the host loop compiles it ahead of
    time once per distinct chunk length).

    The keys of all ``n`` steps and C chains (``split(fold_in(key, step), C)``) are drawn
    before the scan in one vectorised call, and so is whatever ``prepare(key)`` makes of each
    of them (e.g. minibatch indices); ``step_fn`` then receives ``prepare(key)`` in place of
    its key. Random numbers drawn in bulk cost far less than many small draws inside the loop.
    """
    vstep = jax.vmap(step_fn, in_axes=(0, 0, None, None))

    def run_chunk(state: LoopState, key: jax.Array, data: Batch, xs: Schedule) -> LoopState:
        n = len(xs["slot"])
        steps = state.step + jnp.arange(n, dtype=state.step.dtype)
        keys = jax.vmap(lambda s: jax.random.split(jax.random.fold_in(key, s), num_chains))(steps)
        if prepare is not None:
            keys = jax.vmap(jax.vmap(prepare))(keys)

        def body(state: LoopState, x: dict) -> tuple[LoopState, None]:
            chain, info = vstep(x["keys"], state.chain, x, data)
            at = jnp.maximum(x["slot"], 0)
            keep = x["slot"] >= 0

            # a select + dynamic update of one [C, ...] slice per step (never a buffer copy)
            def write(buf, new):
                return buf.at[:, at].set(jnp.where(keep, new, buf[:, at]))

            position = position_fn(chain)
            draws = jax.tree.map(write, state.draws, position) if state.draws else state.draws
            draw_info = {k: write(state.draw_info[k], info[k]) for k in state.draw_info}
            totals = {k: state.totals[k] + jnp.where(x["sampling"], info[k], 0)
                      for k in state.totals}
            bad = (state.nonfinite < 0) & ~all_finite(position)
            nonfinite = jnp.where(bad, state.step, state.nonfinite)
            return LoopState(chain, draws, draw_info, totals, state.step + 1, nonfinite), None

        state, _ = jax.lax.scan(body, state, {**xs, "keys": keys})
        return state

    return run_chunk


class Checkpoint:
    """A directory holding one sampling run's ``LoopState`` and the settings it belongs to.

    ``fingerprint`` (a JSON-able dict: method, options, data hash) is written next to the state;
    loading from a directory written with other settings raises instead of silently mixing
    two runs.
    """

    def __init__(self, directory: str | os.PathLike, fingerprint: dict[str, Any]):
        self.dir = Path(directory)
        self.fingerprint = json.loads(json.dumps(fingerprint))
        self.state_file = self.dir / "sampler_state.msgpack"
        self.meta_file = self.dir / "sampler_meta.json"

    def load(self, template: Any) -> Any | None:
        """The saved state (restored into ``template``'s structure), or None if there is none."""
        if not self.state_file.exists():
            return None
        if self.meta_file.exists():
            saved = json.loads(self.meta_file.read_text())
            if saved != self.fingerprint:
                diff = sorted(k for k in set(saved) | set(self.fingerprint)
                              if saved.get(k) != self.fingerprint.get(k))
                raise ValueError(
                    f"`checkpoint_dir` {str(self.dir)!r} holds a run with other settings "
                    f"(differs in {diff}); use a fresh directory or the same settings."
                )
        template = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), template)
        return jax.tree.map(jnp.asarray,
                            serialization.from_bytes(template, self.state_file.read_bytes()))

    def save(self, state: Any) -> None:
        atomic_write(self.meta_file, json.dumps(self.fingerprint, indent=1).encode())
        atomic_write(self.state_file, serialization.to_bytes(jax.device_get(state)))


def run_loop(
    state: LoopState,
    run_chunk: Callable,
    key: jax.Array,
    data: Batch,
    schedule: Schedule,
    *,
    chunk_steps: int | None,
    checkpoint: Checkpoint | None,
    progress: bool,
    callback: Callable[[dict], None] | None,
    description: str,
    phase: str = "sampling",
    nonfinite_hint: str = "lower `step_size`",
) -> tuple[LoopState, dict[str, float]]:
    """The samplers' use of the one host driver (``bdl.training._driver.drive``): run
    ``run_chunk`` (a ``jax.jit`` function) chunk after chunk until the schedule is done,
    resuming from ``state.step``.

    Each distinct chunk length is compiled ahead of time once (not at all when an identical
    run compiled it before), so compile time is reported apart (``compile_s``, also on the
    progress bar) from run time (``run_s``). After every chunk a
    chain gone NaN/inf raises ``bdl.NonFiniteError`` (naming the step, ``phase`` and
    ``nonfinite_hint``); otherwise the state is checkpointed (if asked) and then
    ``callback({"step", "total_steps", "phase"})`` is called.
    """
    total = int(len(schedule["slot"]))
    chunk_steps = int(chunk_steps or default_chunk_steps(total))
    lengths: set[int] = set()

    def args_for(done: int, n: int) -> tuple:
        lengths.add(n)
        return key, data, {k: jnp.asarray(v[done:done + n]) for k, v in schedule.items()}

    def check(state: LoopState, log: None, done: int) -> None:
        bad = np.asarray(jax.device_get(state.nonfinite))
        if np.any(bad >= 0):
            c = int(np.flatnonzero(bad >= 0)[np.argmin(bad[bad >= 0])])
            raise NonFiniteError(
                f"{description}: chain {c}'s parameters became NaN/inf at step {int(bad[c])} "
                f"of {total} ({phase}); {nonfinite_hint}.")

    def report(state: LoopState, log: None, done: int) -> bool:
        if callback is not None:
            callback({"step": int(state.step), "total_steps": total, "phase": phase})
        return False

    state, _, timing = drive(
        state, _with_log(run_chunk), total=total, chunk=chunk_steps, done=int(state.step),
        args_for=args_for, static_length=False, check=check,
        save=None if checkpoint is None else checkpoint.save, stop=report, progress=progress,
        description=description, unit="step",
    )
    return state, {**timing, "compiled_chunk_lengths": sorted(lengths)}


def _with_log(run_chunk: Callable) -> Callable:
    """``run_chunk`` in the driver's form ``(state, *args) -> (state, log)`` (no log)."""
    return memo(("with_log", run_chunk), lambda: jax.jit(lambda *a: (run_chunk(*a), None)))


def compiled(fn: Callable, *args: Any) -> Callable:
    """``fn`` (a ``jax.jit`` function) compiled ahead of time for the types of ``args``,
    memoised on ``fn`` and those types: the same ``fn`` (see ``bdl._cache``) on arguments of
    the same structure, shapes, dtypes and placement compiles once per process."""
    leaves = jax.tree.leaves(args)
    spec = (jax.config.jax_enable_x64, jax.tree.structure(args), tuple(
        (jnp.shape(a), jnp.result_type(a), getattr(a, "weak_type", False),
         getattr(a, "sharding", None)) for a in leaves))
    return memo(("aot", fn, spec), lambda: fn.lower(*args).compile())


def fingerprint(method: str, options: dict[str, Any], data: Batch) -> dict[str, Any]:
    """A JSON-able description of a run: the method, its options (arrays and pytrees hashed)
    and a hash of the data."""
    out: dict[str, Any] = {"method": method, "data": _hash_tree(data)}
    for name, value in sorted(options.items()):
        if callable(value) and not hasattr(value, "log_prob"):
            out[name] = getattr(value, "__qualname__", repr(type(value)))
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[name] = value
        elif jax.tree.leaves(value) and all(hasattr(a, "shape") for a in jax.tree.leaves(value)):
            out[name] = _hash_tree(value)
        else:
            out[name] = repr(value)
    return out


def _hash_tree(tree: Any) -> str:
    h = hashlib.sha1()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        arr = np.asarray(leaf)
        h.update(f"{jax.tree_util.keystr(path)}{arr.shape}{arr.dtype}".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()
