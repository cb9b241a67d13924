"""Sweep benchmark: 32 seeds of one MAP configuration, vmapped vs one after another.

Run:  .venv/bin/python -m utilities.bench.sweep_speed [--seeds 32] [--epochs 500] [--quick]

1. Fit: ``bdl.approximators.fit_seeds`` (all seeds in ONE compiled, vmapped program) against
   32 sequential ``bdl.fit`` calls in the same process. Compile time is included in both
   (every ``bdl.fit`` builds and compiles its own program, as a user's loop over seeds does).
   Model MLP(50, 50) tanh, full-batch Adam, lr 1e-2, on two data sets:
   ``diabetes`` (353 x 10 training points, the sweep registry's: the typical sweep workload)
   and, unless ``--quick``, the peer problem (2,000 x 8, ``utilities/bench/_common.py``: compute-bound
   on a small CPU, where vmapping saves compilation but not run time).
   Target (issue 8): vmapped >= 8x faster. An untimed warm-up fit (1 epoch) first takes the
   process's one-time start-up costs off both timings.
2. Sweep path: ``bdl.sweeps.run_configuration`` with all seeds against one call per seed:
   fit + predict + metrics + decision metrics on ``diabetes``, as a sweep runs.
Seed s of both ways is compared (max |predictive-mean difference|, max |CRPS difference|):
equal at first, the two float orders drift apart over hundreds of Adam steps.
Results are appended to ``utilities/bench/results/sweep_speed.jsonl``.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

import bdl
from bdl import sweeps
from utilities.bench._common import peer_regression_data, write_result


def _data(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if name == "peer":
        x, y, xt, _ = peer_regression_data()
        return x, y, xt
    d = sweeps.get_dataset(name)
    return d.x_train, d.y_train, d.x_test


def bench_fit(data: str, num_seeds: int, epochs: int) -> dict:
    x, y, xt = _data(data)
    model = bdl.models.MLP((50, 50), out=1, activation="tanh")
    lik = bdl.likelihoods.Gaussian()
    kw = dict(epochs=epochs, learning_rate=1e-2, chunk_epochs=epochs)
    keys = sweeps.seed_keys(range(num_seeds))
    # warm-up (untimed): one-time process costs (backend start, eager ops on these shapes)
    # would otherwise land on whichever way runs first; the timed programs differ from
    # these (other epoch count and seed count), so both ways still compile what they time
    bdl.fit("map", model, lik, (x, y), key=jax.random.key(0), epochs=1)
    bdl.approximators.fit_seeds("map", model, lik, (x, y), keys=keys[:2], epochs=1)

    t0 = time.perf_counter()
    batched = bdl.approximators.fit_seeds("map", model, lik, (x, y), keys=keys, **kw)
    jax.block_until_ready([p.particles for p in batched])
    vmapped_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    sequential = []
    for seed in range(num_seeds):
        post = bdl.fit("map", model, lik, (x, y), key=jax.random.key(seed), **kw)
        jax.block_until_ready(post.particles)
        sequential.append(post)
    sequential_s = time.perf_counter() - t0

    diff = max(float(np.max(np.abs(a.predict(xt).mean() - b.predict(xt).mean())))
               for a, b in zip(batched, sequential, strict=True))
    hist = batched[0].info["history"]
    seq_compile = sum(p.info["history"]["compile_s"] for p in sequential)
    seq_run = sum(p.info["history"]["run_s"] for p in sequential)
    return {
        "seeds": num_seeds, "epochs": epochs, "data": f"{data} {x.shape[0]}x{x.shape[1]}",
        "model": "MLP(50,50) tanh",
        "vmapped_total_s": vmapped_s, "vmapped_compile_s": hist["compile_s"],
        "vmapped_run_s": hist["run_s"],
        "sequential_total_s": sequential_s, "sequential_compile_s": seq_compile,
        "sequential_run_s": seq_run,
        "speedup_total_incl_compile": sequential_s / vmapped_s,
        "speedup_run_only": seq_run / hist["run_s"],
        "max_abs_mean_diff": diff,
    }


def bench_sweep_path(num_seeds: int, epochs: int) -> dict:
    spec = sweeps.load_config({
        "name": "bench", "seeds": num_seeds,
        "grid": {"method": "map", "dataset": "diabetes", "hidden": [[50, 50]],
                 "activation": "tanh"},
        "options": {"epochs": epochs, "learning_rate": 1e-2},
    })
    (config,) = spec.configurations()
    utility = spec.utilities[config["utility"]]
    t0 = time.perf_counter()
    batched = sweeps.run_configuration(config, spec.seeds, utility)
    batched_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sequential = [sweeps.run_configuration(config, [s], utility)[0] for s in spec.seeds]
    sequential_s = time.perf_counter() - t0
    diff = max(abs(a["crps"] - b["crps"]) for a, b in zip(batched, sequential, strict=True))
    return {"seeds": num_seeds, "epochs": epochs, "data": "diabetes",
            "batched_total_s": batched_s, "sequential_total_s": sequential_s,
            "speedup": sequential_s / batched_s, "max_abs_crps_diff": diff,
            "all_ok": all(r["status"] == "ok" for r in batched + sequential)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="skip the 2,000-point peer problem")
    args = ap.parse_args()

    record = {"load_avg_1m": os.getloadavg()[0], "cpus": os.cpu_count(),
              "fit": bench_fit("diabetes", args.seeds, args.epochs)}
    if not args.quick:
        record["fit_peer"] = bench_fit("peer", args.seeds, args.epochs)
    record["sweep_path"] = bench_sweep_path(args.seeds, args.epochs)
    record["load_avg_1m_after"] = os.getloadavg()[0]
    path = write_result("sweep_speed", record)

    for key in ("fit", "fit_peer"):
        if key not in record:
            continue
        f = record[key]
        print(f"MAP x {f['seeds']} seeds on {f['data']}, {f['epochs']} full-batch epochs: "
              f"vmapped {f['vmapped_total_s']:.1f} s (compile {f['vmapped_compile_s']:.1f} s) vs "
              f"sequential {f['sequential_total_s']:.1f} s (compile "
              f"{f['sequential_compile_s']:.1f} s) -> {f['speedup_total_incl_compile']:.1f}x incl. "
              f"compile, {f['speedup_run_only']:.1f}x run only; max |mean diff| "
              f"{f['max_abs_mean_diff']:.1e}")
    s = record["sweep_path"]
    print(f"Sweep path (fit+predict+metrics+decisions): {s['batched_total_s']:.1f} s vs "
          f"{s['sequential_total_s']:.1f} s -> {s['speedup']:.1f}x")
    print(f"load average {record['load_avg_1m']:.1f} -> {record['load_avg_1m_after']:.1f}; "
          f"written to {path}")


if __name__ == "__main__":
    main()
