"""The one host driver every method's loop runs on: jitted chunks, progress, compile time
apart, checks, checkpoints, stopping.

A method supplies a pure chunk ``run_chunk(state, *args) -> (state, log)`` (a ``jax.jit``
function, usually a ``lax.scan`` over steps or epochs, vmapped over seeds / members / chains)
and, per chunk, its arguments (``args_for(done, n)``: e.g. the slice of a step schedule). The
driver

- compiles each distinct ``(chunk length, argument types)`` ahead of time once, memoised
  across calls (``bdl._cache``), so compile time is reported apart from run time and a
  repeated identical fit compiles nothing;
- runs chunks until ``total`` units are done (resuming from ``done``), or until ``after_chunk``
  returns True (convergence, early stopping);
- after every chunk calls ``check(state, log, done)`` (checks that raise, e.g.
  ``bdl.NonFiniteError``: nothing bad is ever checkpointed), writes the checkpoint (``save``),
  moves the progress bar, and asks ``stop(state, log, done)`` (stopping rules, user
  callbacks: a callback that raises leaves the checkpoint of the chunk it saw);
- returns the state, the chunks' logs (host numpy) and ``{"compile_s", "run_s"}``.

The host does nothing between chunks but this bookkeeping; everything numeric stays on the
device inside ``run_chunk``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from bdl._cache import memo
from bdl._host import progress_bar

RunChunk = Callable[..., tuple[Any, Any]]


def drive(
    state: Any,
    run_chunk: RunChunk,
    *,
    total: int,
    chunk: int,
    done: int = 0,
    args_for: Callable[[int, int], tuple] = lambda done, n: (),
    static_length: bool = True,
    check: Callable[[Any, Any, int], None] | None = None,
    save: Callable[[Any], None] | None = None,
    stop: Callable[[Any, Any, int], bool] | None = None,
    progress: bool = False,
    description: str = "fit",
    unit: str = "step",
) -> tuple[Any, list[Any], dict[str, float]]:
    """Run ``run_chunk`` chunk after chunk from ``done`` to ``total`` units (see the module
    docstring).

    Args:
      state: the initial (or resumed) state, a pytree.
      run_chunk: a ``jax.jit`` function ``(state, *args[, n]) -> (state, log)``; with
        ``static_length`` its last argument is the chunk length ``n`` (static).
      total, chunk, done: units in all, per chunk, and already done.
      args_for: ``(done, n) -> args`` of the next chunk.
      check: ``(state, log, done)``, run first; raise from it to abort the run.
      save: writes a checkpoint of the state after each chunk.
      stop: ``(state, log, done) -> bool``, run last; True ends the run.
      progress, description, unit: the progress bar.
    """
    logs: list[Any] = []
    compile_s = run_s = 0.0
    bar = progress_bar(progress, total, done, description, unit=unit)
    try:
        while done < total:
            n = min(int(chunk), total - done)
            args = args_for(done, n)
            t0 = time.perf_counter()
            compiled = _compiled(run_chunk, state, args, n if static_length else None)
            compile_s += time.perf_counter() - t0
            if bar is not None and compile_s > 0.05:
                bar.set_postfix_str(f"compile {compile_s:.1f}s", refresh=False)
            t0 = time.perf_counter()
            state, log = jax.block_until_ready(compiled(state, *args))
            run_s += time.perf_counter() - t0
            log = jax.device_get(log)
            logs.append(log)
            if check is not None:
                check(state, log, done)
            if save is not None:
                save(state)
            if bar is not None:
                bar.update(n)
            ended = stop(state, log, done) if stop is not None else False
            done += n
            if ended:
                break
    finally:
        if bar is not None:
            bar.close()
    return state, logs, {"compile_s": compile_s, "run_s": run_s}


def _compiled(run_chunk: RunChunk, state: Any, args: tuple, n: int | None) -> Callable:
    """``run_chunk`` compiled ahead of time for these argument types (memoised)."""
    tree = (state, args)
    spec = (jax.config.jax_enable_x64, jax.tree.structure(tree), tuple(
        (jnp.shape(a), jnp.result_type(a), getattr(a, "weak_type", False),
         getattr(a, "sharding", None)) for a in jax.tree.leaves(tree)))

    def build():
        lowered = run_chunk.lower(state, *args, n) if n is not None else run_chunk.lower(
            state, *args)
        return lowered.compile()

    return memo(("drive", run_chunk, n, spec), build)
