"""NUTS warm-up study: which adaptation samples the peer BNN best, per leapfrog and per second.

Run:  .venv/bin/python -m utilities.bench.nuts_adaptation --seeds 0:4 [--variants a,b,...]
      .venv/bin/python -m utilities.bench.nuts_adaptation --summary utilities/bench/results/nuts_adaptation.jsonl

The problem is the one of ``shared/bench-peers/numpyro_nuts_bench.py`` (4-10-1 tanh BNN, 61
parameters, 200 points, N(0, 1) priors, noise 0.1), 500 warm-up steps and 1,000 draws, one
chain per seed. Every variant of a seed starts from the SAME position (uniform(-2, 2), drawn
from the seed) and uses the same key, so per-seed ratios compare adaptations, not starting
points. All variants are blackjax's NUTS kernel on the flat parameter vector; they differ only
in the warm-up:

- ``window``: ``blackjax.window_adaptation`` (Stan's schedule, diagonal Welford metric; after
  each slow window dual averaging restarts from the window's averaged step size);
- ``numpyro_style``: the same schedule and estimators, but after each slow window the step size
  is searched again under the new metric (``find_reasonable_step_size``) before dual averaging
  restarts, as Stan and numpyro do (blackjax pieces composed here);
- ``dense``: ``blackjax.window_adaptation`` with a dense Welford metric (bdl's default for
  models this small: ``bdl.approximators._hmc.resolve_dense_mass``);
- ``window_grow``: diagonal Welford metric on nutpie's growing-window schedule
  (``blackjax.staged_adaptation`` + ``build_growing_window_schedule``);
- ``fisher``: ``staged_adaptation`` with the Fisher-divergence diagonal metric (nutpie's);
- ``lowrank``: ``blackjax.window_adaptation_low_rank`` (Fisher low-rank + diagonal metric);
- ``numpyro``: numpyro's NUTS with its defaults, started at the same position
  (``init_to_value``); timed on its second run (compiled code re-used).

The blackjax variants start their warm-up at ``find_reasonable_step_size`` (as bdl does). Each
is compiled ahead of time and timed once (warm-up + sampling). ESS is numpyro's classic Geyer
ESS over the 61 scalars (as the peer script). One JSON line per (seed, variant) is appended to
``--out``; ``--summary`` prints, per variant, medians over seeds and the per-seed ESS/s ratio
to numpyro. Run it with one process per core for many seeds (``taskset -c i``, and
``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"``).
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.base import get_filter_adapt_info_fn
from blackjax.adaptation.low_rank_adaptation import build_growing_window_schedule
from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
from blackjax.adaptation.step_size import dual_averaging_adaptation
from blackjax.adaptation.window_adaptation import build_schedule
from jax.flatten_util import ravel_pytree
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

from bdl.approximators._hmc import reasonable_step_size
from utilities.bench._common import RESULTS
from utilities.bench.sampling_speed import _peer_nuts_module

VARIANTS = ("window", "numpyro_style", "dense", "window_grow", "fisher", "lowrank", "numpyro")
TARGET = 0.8


def numpyro_style_warmup(key, target, position, num_steps):
    """Stan's windows and Welford diagonal; the step size searched again after each window."""
    kernel = blackjax.nuts.build_kernel()
    mm_init, mm_update, mm_final = mass_matrix_adaptation(True)
    da_init, da_update, _ = dual_averaging_adaptation(TARGET)
    schedule = build_schedule(num_steps)
    k0, key = jax.random.split(key)
    imm = jnp.ones(position.shape[0])
    eps = reasonable_step_size(k0, target, position, 1.0, TARGET, imm)

    def body(carry, xs):
        state, mm, da, eps, imm = carry
        k, stage, window_end = xs
        k_step, k_search = jax.random.split(k)
        state, info = kernel(k_step, state, target, eps, imm)
        da = da_update(da, info.acceptance_rate)
        eps = jnp.exp(da.log_step_size)
        mm = jax.lax.cond(stage == 1, lambda m: mm_update(m, state.position), lambda m: m, mm)

        def at_window_end(args):
            mm, _, eps, _ = args
            mm = mm_final(mm)
            eps = reasonable_step_size(k_search, target, state.position, eps, TARGET,
                                       mm.inverse_mass_matrix)
            return mm, da_init(eps), eps, mm.inverse_mass_matrix

        mm, da, eps, imm = jax.lax.cond(window_end, at_window_end, lambda a: a,
                                        (mm, da, eps, imm))
        return (state, mm, da, eps, imm), None

    carry = (blackjax.nuts.init(position, target), mm_init(position.shape[0]), da_init(eps),
             eps, imm)
    xs = (jax.random.split(key, num_steps), schedule[:, 0], schedule[:, 1].astype(bool))
    (state, _, da, _, imm), _ = jax.lax.scan(body, carry, xs)
    return state, jnp.exp(da.log_step_size_avg), imm


def _blackjax_adaptation(name, target, eps0):
    filt = get_filter_adapt_info_fn()
    if name == "window":
        return blackjax.window_adaptation(blackjax.nuts, target, initial_step_size=eps0,
                                          adaptation_info_fn=filt)
    if name == "dense":
        return blackjax.window_adaptation(blackjax.nuts, target, is_mass_matrix_diagonal=False,
                                          initial_step_size=eps0, adaptation_info_fn=filt)
    if name == "window_grow":
        return blackjax.staged_adaptation(blackjax.nuts, target, metric="welford_diag",
                                          schedule_fn=build_growing_window_schedule,
                                          initial_step_size=eps0, adaptation_info_fn=filt)
    if name == "fisher":
        return blackjax.staged_adaptation(blackjax.nuts, target, metric="fisher_diag",
                                          initial_step_size=eps0, adaptation_info_fn=filt)
    if name == "lowrank":
        return blackjax.window_adaptation_low_rank(blackjax.nuts, target, initial_step_size=eps0)
    raise ValueError(f"unknown variant {name!r}; choose from {VARIANTS}")


def blackjax_run(name, log_density, warmup, samples):
    """``(key, position tree) -> (draws [S, P], leapfrogs [S], divergent [S], step size)``."""

    def run(key, position):
        flat, unravel = ravel_pytree(position)
        target = lambda f: log_density(unravel(f))
        k_warm, k_sample, k_search = jax.random.split(key, 3)
        if name == "numpyro_style":
            state, eps, imm = numpyro_style_warmup(k_warm, target, flat, warmup)
        else:
            eps0 = reasonable_step_size(k_search, target, flat, 1.0, TARGET)
            adaptation = _blackjax_adaptation(name, target, eps0)
            (state, params), _ = adaptation.run(k_warm, flat, num_steps=warmup)
            eps, imm = params["step_size"], params["inverse_mass_matrix"]
        kernel = blackjax.nuts.build_kernel()

        def step(state, k):
            state, info = kernel(k, state, target, eps, imm)
            return state, (state.position, info.num_integration_steps, info.is_divergent)

        _, (draws, leapfrogs, divergent) = jax.lax.scan(step, state,
                                                         jax.random.split(k_sample, samples))
        return draws, leapfrogs, divergent, eps

    return jax.jit(run)


def one_seed(peer, seed: int, variants: list[str], warmup: int, samples: int, out: Path):
    x, y = peer.make_data()
    position = jax.tree.map(lambda a: a[0], peer.init_positions(jax.random.PRNGKey(1000 + seed), 1))
    key = jax.random.PRNGKey(seed)
    for name in variants:
        if name == "numpyro":
            from numpyro.infer import MCMC, NUTS
            from numpyro.infer.initialization import init_to_value

            mcmc = MCMC(NUTS(peer.model, init_strategy=init_to_value(values=position)),
                        num_warmup=warmup, num_samples=samples, progress_bar=False)
            for _ in range(2):  # the second run re-uses the compiled code
                t0 = time.perf_counter()
                mcmc.run(key, x, y, extra_fields=("num_steps", "diverging"))
                jax.block_until_ready(mcmc.get_samples())
                wall = time.perf_counter() - t0
            draws = peer.flat_draws(mcmc.get_samples(group_by_chain=True), 1)
            extra = mcmc.get_extra_fields()
            leapfrogs, divergent = np.asarray(extra["num_steps"]), np.asarray(extra["diverging"])
            eps = float(mcmc.last_state.adapt_state.step_size)
        else:
            compiled = blackjax_run(name, peer.logdensity_factory(x, y), warmup, samples
                                    ).lower(key, position).compile()
            t0 = time.perf_counter()
            d, leapfrogs, divergent, eps = jax.block_until_ready(compiled(key, position))
            wall = time.perf_counter() - t0
            draws, leapfrogs = np.asarray(d)[None], np.asarray(leapfrogs)
            divergent, eps = np.asarray(divergent), float(eps)
        ess = np.asarray(effective_sample_size(draws))
        rec = {"variant": name, "seed": seed, "warmup": warmup, "samples": samples,
               "jax": jax.__version__, "wall_s": wall, "ess_median": float(np.median(ess)),
               "ess_min": float(ess.min()), "ess_per_s": float(np.median(ess) / wall),
               "ess_per_1k_leapfrogs": float(1000 * np.median(ess) / leapfrogs.sum()),
               "leapfrogs_per_draw": float(leapfrogs.mean()), "step_size": eps,
               "divergences": int(divergent.sum()),
               "split_rhat_max": float(np.asarray(split_gelman_rubin(draws)).max())}
        with out.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)


def summary(paths: list[Path]) -> str:
    recs = [json.loads(line) for p in paths for line in p.open()]
    by = collections.defaultdict(dict)
    for r in recs:
        by[r["variant"]][r["seed"]] = r
    base = by.get("numpyro", {})
    lines = ["| variant | seeds | median ESS/s | median ESS per 1k leapfrogs | leapfrogs/draw | "
             "divergent draws | median split R-hat | ESS/s ratio to numpyro: of medians | "
             "per-seed median | seeds better |", "|" + "---|" * 10]
    for name in [v for v in VARIANTS if v in by]:
        rs = list(by[name].values())
        med = lambda k, rs=rs: float(np.median([r[k] for r in rs]))
        ratios = [r["ess_per_s"] / base[s]["ess_per_s"] for s, r in by[name].items() if s in base]
        of_medians = med("ess_per_s") / float(np.median([r["ess_per_s"] for r in base.values()]))
        div = sum(r["divergences"] for r in rs) / sum(r["samples"] for r in rs)
        lines.append(f"| {name} | {len(rs)} | {med('ess_per_s'):.2f} | "
                     f"{med('ess_per_1k_leapfrogs'):.3f} | {med('leapfrogs_per_draw'):.0f} | "
                     f"{100 * div:.1f}% | {med('split_rhat_max'):.2f} | {of_medians:.2f} | "
                     f"{np.median(ratios):.2f} | {sum(q > 1 for q in ratios)}/{len(ratios)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0:1", help="a:b runs seeds a..b-1")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=RESULTS / "nuts_adaptation.jsonl")
    ap.add_argument("--summary", type=Path, nargs="*", help="print the table of these files")
    args = ap.parse_args()
    if args.summary:
        print(summary(args.summary))
        return
    lo, hi = (int(s) for s in args.seeds.split(":"))
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"--variants: unknown {sorted(unknown)}; choose from {VARIANTS}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    peer = _peer_nuts_module()
    for seed in range(lo, hi):
        one_seed(peer, seed, variants, args.warmup, args.samples, args.out)


if __name__ == "__main__":
    main()
