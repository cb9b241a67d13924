"""Sampling benchmark: SG-MCMC step cost vs SGD, and NUTS vs numpyro on the peer BNN.

Run:  .venv/bin/python -m utilities.bench.sampling_speed [--skip-nuts] [--full] [--force]

1. Step cost, on the peer regression MLP (8-50-50-1 tanh, 3,051 parameters, 2,000 points):
   one SGLD step and one SGHMC integration step (one minibatch gradient each) against one plain
   SGD step, same model and minibatch size. Two views:
   - kernel: the same ``lax.scan`` harness around ``optax.sgd`` / ``blackjax.sgld`` /
     ``blackjax.sghmc`` (per-step key, minibatch gather, gradient of the log density); the SG
     kernels get the library's per-step key (``bdl.approximators._sgmcmc.kernel_key``: philox)
     and, as ``*_threefry``, jax's default threefry key (the time of the noise draw);
   - library: ``bdl.fit("sgld" | "sghmc")`` sampling time per step against
     ``bdl.fit("map", optimizer=optax.sgd(...))`` training time per step.
   Medians of repeated runs, compilation excluded (reported apart); wall and process (CPU)
   time, the latter robust to other jobs on the machine (run pinned, ``taskset -c 0``, when
   the machine is busy: XLA's intra-op threads then stall on each other).
2. NUTS on the BNN of ``shared/bench-peers/numpyro_nuts_bench.py`` (4-10-1 tanh, 61 parameters,
   200 points, N(0, 1) priors, noise 0.1, inits uniform(-2, 2)): ``bdl.fit("nuts")`` and
   numpyro's NUTS (the peer script's model) side by side in one process, several seeds, the
   same chains / warm-up / draws, and per seed the same starting point for both (drawn from
   the peer protocol's uniform(-2, 2); numpyro gets it as ``init_params``): a paired
   comparison, since which mode a chain starts near decides much of its ESS. ESS = ``numpyro.diagnostics.effective_sample_size`` over the
   61 scalars (classic Geyer ESS, as the peer script); ESS/s = median ESS / wall time without
   compilation (bdl: the whole ``fit`` call minus its ahead-of-time compile time; numpyro: a
   run re-using the compiled code). Divergences, split R-hat, leapfrog steps per draw and the
   share of depth-10 trajectories are reported.
   Default: 1 chain, 1 seed, 300 warm-up + 500 draws (a few minutes). ``--full`` is the issue's
   protocol: 3 seeds, 500 warm-up + 1,000 draws (about 10 minutes on 2 cores). Wall-clock
   timings need an idle machine: the NUTS part refuses to run when the 1-minute load average
   is >= 1.5 unless ``--force`` is given.
Results are appended to ``utilities/bench/results/sampling_speed.jsonl``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

import bdl
from bdl.approximators._sampler_common import log_density_fn
from bdl.approximators._sgmcmc import KERNEL_KEY_IMPL, kernel_key
from utilities.bench._common import PEERS, peer_regression_data, write_result

MAX_TREE = 2**10 - 1


# ---------------------------------------------------------------- 1. step cost
def _peer_mlp_problem():
    x, y, _, _ = peer_regression_data()
    model = bdl.models.MLP((50, 50), out=1, activation="tanh")
    lik = bdl.likelihoods.Gaussian(scale=0.1)
    network = bdl.models.as_network(model, jnp.asarray(x[:1]))
    data = {"x": jnp.asarray(x), "y": jnp.asarray(y), "w": jnp.ones(len(x), jnp.float32)}
    return model, lik, network, data, (x, y)


def _median_time(fn, *args, repeats: int) -> tuple[float, float]:
    """Median wall and process (CPU) time of ``fn(*args)``."""
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return float(np.median(walls)), float(np.median(cpus))


def bench_kernel_steps(batch_size: int, steps: int, repeats: int, integration_steps: int) -> dict:
    """Per-step time of SGD / SGLD / SGHMC in the same scan harness."""
    _, lik, network, data, _ = _peer_mlp_problem()
    n = int(data["x"].shape[0])
    log_density = log_density_fn(network, lik, bdl.priors.IsotropicGaussian(1.0), n)
    grad = jax.grad(log_density)
    params = {"net": network.init(jax.random.key(0)), "lik": lik.init_params()}
    sgd = optax.sgd(1e-6)
    sgld = blackjax.sgld(grad)
    sghmc = blackjax.sghmc(grad, integration_steps, 0.01, 0.0)

    def bulk(key, num, as_kernel_key=False):  # per-step minibatch indices and keys, in bulk
        k_batch, k_step = jax.random.split(key)
        idx = jax.random.randint(k_batch, (num, batch_size), 0, n)
        keys = jax.random.split(k_step, num)
        return idx, jax.vmap(kernel_key)(keys) if as_kernel_key else keys

    def gather(idx):
        return jax.tree.map(lambda a: a[idx], data)

    def sgd_run(params, key):
        def body(carry, xs):
            p, s = carry
            g = grad(p, gather(xs[0]))
            updates, s = sgd.update(jax.tree.map(jnp.negative, g), s, p)
            return (optax.apply_updates(p, updates), s), None

        (p, _), _ = jax.lax.scan(body, (params, sgd.init(params)), bulk(key, steps))
        return p

    def sg_run(kernel, num, as_kernel_key):
        def run(params, key):
            def body(p, xs):
                return kernel.step(xs[1], p, gather(xs[0]), 1e-7, 1.0), None

            p, _ = jax.lax.scan(body, params, bulk(key, num, as_kernel_key))
            return p

        return run

    out = {"batch_size": batch_size, "steps": steps, "integration_steps": integration_steps,
           "kernel_key_impl": KERNEL_KEY_IMPL or "threefry2x32"}
    sghmc_calls = steps // integration_steps
    runs = {"sgd": (sgd_run, steps), "sgld": (sg_run(sgld, steps, True), steps),
            "sghmc": (sg_run(sghmc, sghmc_calls, True), steps),
            "sgld_threefry": (sg_run(sgld, steps, False), steps),
            "sghmc_threefry": (sg_run(sghmc, sghmc_calls, False), steps)}
    for name, (fn, grads) in runs.items():
        t0 = time.perf_counter()
        compiled = jax.jit(fn).lower(params, jax.random.key(1)).compile()
        out[f"{name}_compile_s"] = time.perf_counter() - t0
        wall, cpu = _median_time(compiled, params, jax.random.key(1), repeats=repeats)
        out[f"{name}_us_per_grad"] = 1e6 * wall / grads
        out[f"{name}_cpu_us_per_grad"] = 1e6 * cpu / grads
    for name in ("sgld", "sghmc", "sgld_threefry", "sghmc_threefry"):
        out[f"{name}_over_sgd"] = out[f"{name}_us_per_grad"] / out["sgd_us_per_grad"]
        out[f"{name}_over_sgd_cpu"] = out[f"{name}_cpu_us_per_grad"] / out["sgd_cpu_us_per_grad"]
    return out


def bench_library_steps(batch_size: int, steps: int, repeats: int, integration_steps: int
                        ) -> dict:
    """Per-step time of ``bdl.fit`` sampling (SGLD / SGHMC) vs ``bdl.fit("map")`` with SGD.

    Wall: the fit's own run time (compilation excluded) over ``2 * steps`` steps. CPU: process
    time of a fit over ``2 * steps`` steps minus one over ``steps`` steps (same chunk length, so
    compilation and set-up cancel): robust on a machine shared with other jobs.
    """
    model, lik, _, _, (x, y) = _peer_mlp_problem()
    common = dict(prior=bdl.priors.IsotropicGaussian(1.0), batch_size=batch_size)
    per_epoch = len(x) // batch_size
    epochs = max(1, steps // per_epoch)
    calls = steps // integration_steps

    def sgd(key, mult):
        return bdl.fit("map", model, lik, (x, y), key=key, epochs=mult * epochs,
                       optimizer=optax.sgd(1e-6), chunk_epochs=epochs, **common)

    def sgld(key, mult):
        return bdl.fit("sgld", model, lik, (x, y), key=key, num_chains=1,
                       num_burnin=mult * steps - 1, num_samples=1, thinning=1, step_size=1e-7,
                       chunk_steps=steps, **common)

    def sghmc(key, mult):
        return bdl.fit("sghmc", model, lik, (x, y), key=key, num_chains=1,
                       num_burnin=mult * calls - 1, num_samples=1, thinning=1, step_size=1e-4,
                       num_integration_steps=integration_steps, chunk_steps=calls, **common)

    grads = {"sgd": epochs * per_epoch, "sgld": steps, "sghmc": calls * integration_steps}
    out = {"batch_size": batch_size, "steps": steps, "integration_steps": integration_steps}
    for name, fit in (("sgd", sgd), ("sgld", sgld), ("sghmc", sghmc)):
        wall, cpu, compiles = [], [], []
        for i in range(repeats):
            c0 = time.process_time()
            fit(jax.random.key(i), 1)
            c1 = time.process_time()
            post = fit(jax.random.key(i), 2)
            c2 = time.process_time()
            timing = post.info["timing"] if "timing" in post.info else post.info["history"]
            wall.append(timing["run_s"] / (2 * grads[name]))
            cpu.append(((c2 - c1) - (c1 - c0)) / grads[name])
            compiles.append(timing["compile_s"])
        out[f"{name}_us_per_grad"] = 1e6 * float(np.median(wall))
        out[f"{name}_cpu_us_per_grad"] = 1e6 * float(np.median(cpu))
        out[f"{name}_compile_s"] = float(np.median(compiles))
    for name in ("sgld", "sghmc"):
        out[f"{name}_over_sgd"] = out[f"{name}_us_per_grad"] / out["sgd_us_per_grad"]
        out[f"{name}_over_sgd_cpu"] = out[f"{name}_cpu_us_per_grad"] / out["sgd_cpu_us_per_grad"]
    return out


# ---------------------------------------------------------------- 2. NUTS vs numpyro
def _peer_nuts_module():
    path = PEERS / "numpyro_nuts_bench.py"
    spec = importlib.util.spec_from_file_location("numpyro_nuts_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nuts_stats(draws: np.ndarray, wall: float, nsteps: np.ndarray, div: np.ndarray) -> dict:
    ess = np.asarray(effective_sample_size(draws))
    return {
        "ess_median_per_1k_leapfrogs": float(1000 * np.median(ess) / np.asarray(nsteps).sum()),
        "ess_min": float(ess.min()), "ess_median": float(np.median(ess)),
        "wall_s_excl_compile": wall,
        "ess_per_s_min": float(ess.min() / wall), "ess_per_s_median": float(np.median(ess) / wall),
        "split_rhat_max": float(np.asarray(split_gelman_rubin(draws)).max()),
        "divergences": int(np.asarray(div).sum()),
        "mean_leapfrog_per_draw": float(np.asarray(nsteps).mean()),
        "frac_max_treedepth": float((np.asarray(nsteps) >= MAX_TREE).mean()),
    }


def _start(peer, seed: int, chains: int) -> dict:
    """The peer model's starting points for ``seed``: uniform(-2, 2) on every parameter (the
    peer protocol's distribution), ``{"w1": [C, 4, 10], "b1": [C, 10], "w2": [C, 10], "b2":
    [C]}``. bdl and numpyro start from these same values (a paired comparison)."""
    return peer.init_positions(jax.random.PRNGKey(10_000 + seed), chains)


def _as_bdl_positions(start: dict) -> dict:
    """The peer's parameters as ``bdl.models.MLP((10,), out=1)`` parameter trees ``[C, ...]``."""
    return {"net": {"layers": {0: {"kernel": start["w1"], "bias": start["b1"]},
                               1: {"kernel": start["w2"][..., None],
                                   "bias": start["b2"][..., None]}}},
            "lik": {}}


def bench_nuts_bdl(peer, x, y, seed: int, chains: int, warmup: int, samples: int,
                   dense_mass: bool | None = None, max_doublings: int | None = None) -> dict:
    model = bdl.models.MLP((10,), out=1, activation="tanh")
    t0 = time.perf_counter()
    post = bdl.fit("nuts", model, bdl.likelihoods.Gaussian(scale=peer.SIGMA), (x, y),
                   key=jax.random.key(seed), prior=bdl.priors.IsotropicGaussian(1.0),
                   num_chains=chains, num_warmup=warmup, num_samples=samples,
                   init_positions=_as_bdl_positions(_start(peer, seed, chains)),
                   chunk_steps=samples, dense_mass=dense_mass,
                   **({} if max_doublings is None else {"max_num_doublings": max_doublings}))
    total = time.perf_counter() - t0
    timing = post.info["timing"]
    chains_tree = post.chains()["net"]["layers"]
    draws = np.concatenate([np.asarray(a).reshape(chains, samples, -1) for a in (
        chains_tree[0]["kernel"], chains_tree[0]["bias"], chains_tree[1]["kernel"],
        chains_tree[1]["bias"])], axis=-1)  # the peer's order: w1, b1, w2, b2
    assert draws.shape[-1] == 61, draws.shape
    info = post.info["draw_info"]
    rec = {"tool": "bdl", "seed": seed, "total_s_incl_compile": total,
           "compile_s": timing["compile_s"], "sampler_run_s": timing["run_s"],
           "sampling_us_per_leapfrog": 1e6 * timing["sampling_s"]
           / float(np.sum(info["num_integration_steps"])),
           "step_size": post.info["step_size"], "dense_mass": post.info["dense_mass"]}
    rec |= _nuts_stats(draws, total - timing["compile_s"], info["num_integration_steps"],
                       info["diverging"])
    return rec


def bench_nuts_numpyro(peer, x, y, seeds: list[int], chains: int, warmup: int, samples: int
                       ) -> list[dict]:
    from numpyro.infer import MCMC, NUTS

    if chains != 1:
        raise ValueError("the paired numpyro run starts one chain per seed (--chains 1)")
    mcmc = MCMC(NUTS(peer.model), num_warmup=warmup, num_samples=samples, num_chains=chains,
                progress_bar=False)

    def run(seed):
        start = jax.tree.map(lambda a: a[0], _start(peer, seed, chains))
        t0 = time.perf_counter()
        mcmc.run(jax.random.PRNGKey(seed), x, y, init_params=start,
                 extra_fields=("diverging", "num_steps"))
        jax.block_until_ready(mcmc.get_samples())
        return time.perf_counter() - t0

    first = run(seeds[0])  # tracing + compilation + sampling; later runs re-use the code
    out = []
    for seed in seeds:
        wall = run(seed)
        extra = mcmc.get_extra_fields()
        draws = peer.flat_draws(mcmc.get_samples(group_by_chain=True), chains)
        rec = {"tool": "numpyro", "seed": seed, "compile_s": first - wall if seed == seeds[0]
               else None,
               "step_size": np.atleast_1d(np.asarray(mcmc.last_state.adapt_state.step_size)
                                          ).tolist()}
        rec |= _nuts_stats(draws, wall, extra["num_steps"], extra["diverging"])
        out.append(rec)
    return out


def bench_nuts(seeds: list[int], chains: int, warmup: int, samples: int,
               dense_mass: bool | None = None, max_doublings: int | None = None) -> dict:
    peer = _peer_nuts_module()
    x, y = peer.make_data()
    numpyro_runs = bench_nuts_numpyro(peer, x, y, seeds, chains, warmup, samples)
    # a short throwaway fit warms jax's caches of eager ops (numpyro's first run does the same)
    bench_nuts_bdl(peer, x, y, seeds[0], chains, 20, 20, dense_mass, max_doublings)
    bdl_runs = [bench_nuts_bdl(peer, x, y, s, chains, warmup, samples, dense_mass,
                               max_doublings)
                for s in seeds]
    med = lambda runs, k: float(np.median([r[k] for r in runs]))
    return {
        "chains": chains, "num_warmup": warmup, "num_samples": samples, "seeds": seeds,
        "bdl_dense_mass_option": dense_mass, "bdl_max_doublings_option": max_doublings, "bdl": bdl_runs, "numpyro": numpyro_runs,
        "bdl_ess_per_s_median": med(bdl_runs, "ess_per_s_median"),
        "numpyro_ess_per_s_median": med(numpyro_runs, "ess_per_s_median"),
        "ratio_ess_per_s_median": med(bdl_runs, "ess_per_s_median")
        / med(numpyro_runs, "ess_per_s_median"),
        # per leapfrog: the cost side of ESS/s, free of which mode a chain happens to find
        "bdl_us_per_leapfrog_median": med(bdl_runs, "sampling_us_per_leapfrog"),
        "ratio_ess_per_1k_leapfrogs_median": med(bdl_runs, "ess_median_per_1k_leapfrogs")
        / med(numpyro_runs, "ess_median_per_1k_leapfrogs"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-nuts", action="store_true")
    ap.add_argument("--skip-steps", action="store_true")
    ap.add_argument("--full", action="store_true", help="3 seeds, 500 warm-up + 1,000 draws")
    ap.add_argument("--force", action="store_true", help="run NUTS even on a busy machine")
    ap.add_argument("--chains", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=None,
                    help="NUTS seeds 0..N-1 (default 3 with --full, else 1): more seeds show "
                         "how much of an ESS gap is the luck of the chains")
    ap.add_argument("--seed-offset", type=int, default=0,
                    help="NUTS seeds start here (parallel runs over several processes)")
    ap.add_argument("--dense-mass", choices=("auto", "dense", "diagonal"), default="auto",
                    help="bdl's NUTS mass matrix: its default rule (auto), or forced")
    ap.add_argument("--max-doublings", type=int, default=None,
                    help="bdl's NUTS tree depth cap (default: the library's)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args()

    record: dict = {"load_avg_1min_start": os.getloadavg()[0]}
    if not args.skip_steps:
        record["kernel_steps"] = bench_kernel_steps(args.batch_size, args.steps, 5, 10)
        record["library_steps"] = bench_library_steps(args.batch_size, args.steps, 3, 10)
        for view in ("kernel_steps", "library_steps"):
            r = record[view]
            print(f"{view} (batch {r['batch_size']}), wall | CPU us per gradient: SGD "
                  f"{r['sgd_us_per_grad']:.0f} | {r['sgd_cpu_us_per_grad']:.0f}; SGLD "
                  f"{r['sgld_us_per_grad']:.0f} | {r['sgld_cpu_us_per_grad']:.0f} "
                  f"({r['sgld_over_sgd']:.2f}x | {r['sgld_over_sgd_cpu']:.2f}x); SGHMC "
                  f"{r['sghmc_us_per_grad']:.0f} | {r['sghmc_cpu_us_per_grad']:.0f} "
                  f"({r['sghmc_over_sgd']:.2f}x | {r['sghmc_over_sgd_cpu']:.2f}x)")
            if "sgld_threefry_over_sgd" in r:
                print(f"  with threefry kernel keys: SGLD {r['sgld_threefry_over_sgd']:.2f}x | "
                      f"{r['sgld_threefry_over_sgd_cpu']:.2f}x; SGHMC "
                      f"{r['sghmc_threefry_over_sgd']:.2f}x | {r['sghmc_threefry_over_sgd_cpu']:.2f}x")
    if not args.skip_nuts:
        load = os.getloadavg()[0]
        if load >= 1.5 and not args.force:
            print(f"NUTS part skipped: 1-minute load average {load:.2f} >= 1.5 (use --force).")
        else:
            seeds = list(range(args.seed_offset,
                               args.seed_offset + (args.seeds or (3 if args.full else 1))))
            warmup, samples = (500, 1000) if args.full else (300, 500)
            dense = {"auto": None, "dense": True, "diagonal": False}[args.dense_mass]
            nuts = bench_nuts(seeds, args.chains, warmup, samples, dense, args.max_doublings)
            record["nuts"] = nuts
            for tool in ("bdl", "numpyro"):
                for r in nuts[tool]:
                    print(f"NUTS {tool} seed {r['seed']}: ESS min/median {r['ess_min']:.1f} / "
                          f"{r['ess_median']:.1f}, wall excl. compile "
                          f"{r['wall_s_excl_compile']:.1f} s -> {r['ess_per_s_median']:.2f}/s "
                          f"({r['ess_median_per_1k_leapfrogs']:.2f} per 1k leapfrogs); "
                          f"divergences {r['divergences']}, R-hat max {r['split_rhat_max']:.2f}, "
                          f"leapfrog/draw {r['mean_leapfrog_per_draw']:.0f}, "
                          f"compile {r['compile_s'] if r['compile_s'] is not None else '-'}")
            print(f"NUTS median ESS/s: bdl {nuts['bdl_ess_per_s_median']:.2f}, numpyro "
                  f"{nuts['numpyro_ess_per_s_median']:.2f} -> {nuts['ratio_ess_per_s_median']:.2f}x"
                  f" (median ESS per 1k leapfrogs: "
                  f"{nuts['ratio_ess_per_1k_leapfrogs_median']:.2f}x)")
    record["load_avg_1min_end"] = os.getloadavg()[0]
    print(f"written to {write_result('sampling_speed', record)}")


if __name__ == "__main__":
    main()
