"""Laplace benchmark: bdl vs laplace-torch on the peer problem (fit, marglik, GLM predictive).

Run:  .venv/bin/python -m utilities.bench.laplace_speed [--torch-python .venv-peers-torch/bin/python]

Problem (``shared/bench-peers/laplace_torch_bench.py``): MLP 8-50-50-1 tanh (3,051 parameters),
2,000 training points, 1,000 test points. MAP: 2,000 full-batch Adam steps, lr 1e-3, weight
decay 1e-4 (== prior precision 0.2 at N = 2,000 with the MSE-equivalent noise sigma^2 = 0.5,
as in ``bench.training_speed``). Laplace: Gaussian likelihood with the noise fixed to the true
0.1; prior precision tuned by the Laplace evidence as laplace-torch's defaults do (one scalar,
start 1.0, 100 Adam steps, lr 0.1); GLM predictive on the 1,000 test points; NLL with
variance ``f_var + 0.1^2``.

Per configuration (``subset/hessian``) the fit is repeated ``--repeats`` times and medians are
reported. ``fit_s`` is the curvature pass (forward + backward passes, Kronecker / diagonal /
full GGN, and for KFAC the eigendecompositions that laplace-torch defers to later calls);
``marglik_s`` is the evidence tuning plus the posterior factor at the tuned precision;
``predict_s`` the GLM predictive. All three are steady state: medians (and minima) of 20 runs of
the compiled programs after a warm-up run; ``*_first_run_s`` is the first run inside
``bdl.fit``. Compile times are reported apart (``*_compile_s``: ahead-of-time
``lower().compile()`` inside ``bdl.fit`` for fit and marglik, first call minus steady state
for predict). With ``--torch-python`` the peer script runs right after in the
same go (torch and laplace-torch live in their own venv, never a bdl dependency); otherwise
the recorded peer figures are quoted. Results are appended to
``utilities/bench/results/laplace_speed.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

import bdl
from bdl.approximators import ParticlePosterior
from bdl.approximators.laplace import build_stages
from bdl.approximators.laplace._marglik import Hyper
from bdl.models import as_network
from utilities.bench._common import PEERS, peer_regression_data, peer_results, write_result

SIGMA = 0.1
# (subset, hessian, peer configuration it is compared with)
CONFIGS = [
    ("last_layer", "kfac", "last_layer/kron"),
    ("all", "kfac", "all/kron"),
    ("all", "diag", "all/diag (backend=BackPackGGN)"),
    ("last_layer", "full", None),
    ("last_layer", "diag", None),
]


def train_map(x, y, repeats: int):
    """MAP as in bench.training_speed; returns the last posterior and the timings."""
    model = bdl.models.MLP((50, 50), out=1, activation="tanh")
    lik = bdl.likelihoods.Gaussian(scale=float(np.sqrt(0.5)))
    runs = []
    for i in range(repeats):
        post = bdl.fit("map", model, lik, (x, y), key=jax.random.key(i), epochs=2000,
                       learning_rate=1e-3, prior=bdl.priors.IsotropicGaussian(0.2),
                       chunk_epochs=2000)
        h = post.info["history"]
        runs.append({"run_s": h["run_s"], "compile_s": h["compile_s"]})
    xt, yt = peer_regression_data()[2:]
    f = post.predict(xt).mean()
    rmse = float(np.sqrt(np.mean((np.asarray(f) - yt) ** 2)))
    nll = float(np.mean(0.5 * np.log(2 * np.pi * SIGMA**2) + 0.5 * (yt - f) ** 2 / SIGMA**2))
    return model, post, {"runs": runs, "test_rmse": rmse, "test_nll_sigma0.1": nll,
                         "run_s": statistics.median(r["run_s"] for r in runs),
                         "compile_s": statistics.median(r["compile_s"] for r in runs)}


def _steady(fn, args, repeats: int) -> tuple[float, float, list[float]]:
    """Median and min wall time of ``repeats`` calls of compiled ``fn`` after a warm-up call."""
    jax.block_until_ready(fn(*args))
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), min(runs), runs


def bench_config(model, map_post, data, subset: str, hessian: str, repeats: int) -> dict:
    x, y, xt, yt = data
    lik = bdl.likelihoods.Gaussian(scale=SIGMA)
    fits = []
    for _ in range(repeats):  # whole fits: compile time, and the first run of each program
        post = bdl.fit("laplace", model, lik, (x, y), key=jax.random.key(0), subset=subset,
                       hessian=hessian, map_posterior=map_post, prior_precision=1.0,
                       tune="marglik", tune_steps=100, tune_learning_rate=0.1)
        fits.append(post.info["timings"])
    # steady state: the same two programs, compiled once, run again and again
    stages = build_stages(post.subnet, hessian, lik, chunk_size=len(x), tune="marglik",
                          tune_noise=False, steps=100, learning_rate=0.1)
    batch = {"x": jnp.asarray(x), "y": jnp.asarray(y), "w": jnp.ones(len(x), jnp.float32)}
    fit_args = (post.theta, post.net_params, {}, batch)
    curvature = jax.jit(stages.curvature).lower(*fit_args).compile()
    curv, terms = curvature(*fit_args)
    init = Hyper(jnp.log(jnp.float32(1.0)), jnp.log(jnp.float32(SIGMA)))
    hyper_args = (curv, terms, post.theta, init)
    hyper = jax.jit(stages.hyper).lower(*hyper_args).compile()
    n = max(20, repeats)
    fit_s, fit_min, _ = _steady(curvature, fit_args, n)
    marglik_s, marglik_min, _ = _steady(hyper, hyper_args, n)
    xt = jnp.asarray(xt)
    t0 = time.perf_counter()
    pred = jax.block_until_ready(post.predict(xt))
    first = time.perf_counter() - t0
    predict_s, predict_min, _ = _steady(post.predict, (xt,), n)
    first_run = lambda stage: statistics.median(f[stage]["run_s"] for f in fits)
    compile_s = lambda stage: statistics.median(f[stage]["compile_s"] for f in fits)
    return {
        "config": f"{subset}/{hessian}",
        "n_laplace_params": post.info["num_params"],
        "fit_s": fit_s, "fit_min_s": fit_min, "fit_first_run_s": first_run("curvature"),
        "fit_compile_s": compile_s("curvature"),
        "marglik_s": marglik_s, "marglik_min_s": marglik_min,
        "marglik_first_run_s": first_run("marglik"), "marglik_compile_s": compile_s("marglik"),
        "predict_s": predict_s, "predict_min_s": predict_min,
        "predict_compile_s": first - predict_s,
        "nll": float(-jnp.mean(pred.log_prob(jnp.asarray(yt)))),
        "rmse": float(jnp.sqrt(jnp.mean((pred.mean() - yt) ** 2))),
        "prior_precision": np.ravel(post.prior_precision).tolist(),
        "log_marglik": float(post.log_marginal_likelihood()),
    }


TORCH_MAP = r"""
import sys, numpy as np, torch
sys.path.insert(0, sys.argv[1])
import laplace_torch_bench as peer
torch.set_num_threads(2)
x, y, xt, yt = peer.make_data()
model = peer.make_model("tanh")
peer.train_map(model, x, y)
np.savez(sys.argv[2], **{k: v.detach().numpy() for k, v in model.state_dict().items()})
"""


def run_torch(python: str, threads: int) -> list[dict]:
    """The peer script in the given venv, now, on this machine (one JSON line per config)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([python, str(PEERS / "laplace_torch_bench.py")], check=True,
                         capture_output=True, text=True, env=env).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def torch_map(python: str, model, x) -> ParticlePosterior:
    """The peer script's MAP network (same seed and steps), as a bdl MAP posterior: Laplace on
    the very same weights compares like with like."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "map.npz")
        subprocess.run([python, "-c", TORCH_MAP, str(PEERS), path], check=True,
                       capture_output=True, text=True)
        w = dict(np.load(path))
    layers = {i: {"kernel": jnp.asarray(w[f"{2 * i}.weight"].T)[None],
                  "bias": jnp.asarray(w[f"{2 * i}.bias"])[None]} for i in range(3)}
    network = as_network(model, jnp.asarray(x[:1]))
    return ParticlePosterior("map", network, bdl.likelihoods.Gaussian(scale=SIGMA),
                             {"net": {"layers": layers}, "lik": {}})


def same_map_nll(model, map_post, data, subset: str, hessian: str) -> dict:
    x, y, xt, yt = data
    post = bdl.fit("laplace", model, bdl.likelihoods.Gaussian(scale=SIGMA), (x, y),
                   key=jax.random.key(0), subset=subset, hessian=hessian, map_posterior=map_post,
                   prior_precision=1.0, tune="marglik", tune_steps=100, tune_learning_rate=0.1)
    pred = post.predict(jnp.asarray(xt))
    return {"nll": float(-jnp.mean(pred.log_prob(jnp.asarray(yt)))),
            "prior_precision": np.ravel(post.prior_precision).tolist(),
            "log_marglik": float(post.log_marginal_likelihood())}


def compare(records: list[dict], peers: list[dict], tag: str) -> None:
    """Speed-ups of every record against the peer lines (``{tag}_speedup``)."""
    by_config = {p.get("config"): p for p in peers}
    for rec in records:
        peer = by_config.get(rec.get("peer_config"))
        if peer is None or "fit_s" not in peer:
            continue
        rec[f"peer_{tag}"] = {k: peer.get(k) for k in (
            "config", "fit_s", "marglik_s", "predict_s", "nll", "prior_precision",
            "map_train_s", "map_test_nll_sigma0.1")}
        rec[f"{tag}_speedup"] = {stage: peer[f"{stage}_s"] / rec[f"{stage}_s"]
                                 for stage in ("fit", "marglik", "predict")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torch-python", help="python of a venv with laplace-torch (see the peers "
                    "README) to run the peer script in the same go")
    ap.add_argument("--torch-threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="add all/full ([3051, 3051] GGN)")
    args = ap.parse_args()

    load_before = os.getloadavg()
    x, y, xt, yt = peer_regression_data()
    model, map_post, map_rec = train_map(x, y, args.repeats)
    configs = CONFIGS + ([("all", "full", None)] if args.full else [])
    records = []
    for subset, hessian, peer_config in configs:
        rec = bench_config(model, map_post, (x, y, xt, yt), subset, hessian, args.repeats)
        rec["peer_config"] = peer_config
        records.append(rec)
        print(f"{rec['config']:>16}: fit {rec['fit_s'] * 1e3:7.2f} ms  marglik "
              f"{rec['marglik_s'] * 1e3:7.2f} ms  predict {rec['predict_s'] * 1e3:7.2f} ms  "
              f"(compile {rec['fit_compile_s']:.2f} / {rec['marglik_compile_s']:.2f} / "
              f"{rec['predict_compile_s']:.2f} s)  NLL {rec['nll']:.3f}  prior "
              f"{rec['prior_precision'][0]:.1f}", flush=True)
    for rec in records:
        rec["fit_plus_marglik_over_map"] = (rec["fit_s"] + rec["marglik_s"]) / map_rec["run_s"]
    recorded = peer_results()
    compare(records, recorded, "recorded")
    record = {
        "problem": "MLP 8-50-50-1 tanh, 2,000 train / 1,000 test points, sigma 0.1",
        "load_avg_before": load_before, "map": map_rec, "laplace": records,
        "peer_recorded_map_train_s": next((p["map_train_s"] for p in recorded
                                           if "map_train_s" in p), None),
    }
    if args.torch_python:
        now = run_torch(args.torch_python, args.torch_threads)
        compare(records, now, "run_now")
        record["peer_run_now_map_train_s"] = next((p["map_train_s"] for p in now
                                                   if "map_train_s" in p), None)
        tmap = torch_map(args.torch_python, model, x)
        f = tmap.predict(jnp.asarray(xt)).mean()
        map_rec["torch_map_test_nll_sigma0.1"] = float(np.mean(
            0.5 * np.log(2 * np.pi * SIGMA**2) + 0.5 * (yt - f) ** 2 / SIGMA**2))
        for rec in records:
            subset, hessian = rec["config"].split("/")
            rec["on_torch_map"] = same_map_nll(model, tmap, (x, y, xt, yt), subset, hessian)
    record["load_avg_after"] = os.getloadavg()
    path = write_result("laplace_speed", record)

    print(f"MAP 2,000 steps: run {map_rec['run_s']:.2f} s (compile {map_rec['compile_s']:.2f} s),"
          f" test RMSE {map_rec['test_rmse']:.3f}, NLL {map_rec['test_nll_sigma0.1']:.3f}; "
          f"load {load_before[0]:.1f} -> {record['load_avg_after'][0]:.1f}")
    for rec in records:
        line = (f"{rec['config']:>16}: (fit + marglik) / MAP = "
                f"{rec['fit_plus_marglik_over_map']:.4f}")
        for tag in ("recorded", "run_now"):
            if f"{tag}_speedup" in rec:
                up, peer = rec[f"{tag}_speedup"], rec[f"peer_{tag}"]
                line += (f"; vs {peer['config']} ({tag}): fit {up['fit']:.0f}x, marglik "
                         f"{up['marglik']:.0f}x, predict {up['predict']:.1f}x, NLL "
                         f"{peer['nll']:.3f}")
        if "on_torch_map" in rec:
            same = rec["on_torch_map"]
            line += (f"; bdl on the torch MAP: NLL {same['nll']:.3f}, prior "
                     f"{same['prior_precision'][0]:.1f}")
        print(line)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
