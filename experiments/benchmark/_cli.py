"""Command line, orchestration and output files of the benchmark."""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import jax
from tqdm.auto import tqdm

from experiments.benchmark import _markdown, _methods, _plots, _route, _sklearn
from experiments.benchmark import _report as R

TASKS = ("route", "diabetes", "digits")


def enable_compilation_cache(path: str | os.PathLike) -> None:
    """Keep every compiled XLA program on disk: seeds and splits of one shape, and later runs,
    then skip compilation (the dominant cost of small models on a CPU)."""
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.benchmark",
                                description="The decision-aware benchmark (see README).")
    p.add_argument("--full", action="store_true",
                   help="the larger protocol: more data, seeds, splits, epochs and draws")
    p.add_argument("--methods", default="",
                   help="comma-separated approximators (default: all of bdl.available())")
    p.add_argument("--seeds", type=int, default=None,
                   help="fit seeds on route choice (default 2; 5 with --full)")
    p.add_argument("--splits", type=int, default=None,
                   help="random splits of diabetes/digits (default 3; 10 with --full)")
    p.add_argument("--tasks", default=",".join(TASKS), help=f"subset of {','.join(TASKS)}")
    p.add_argument("--out", type=Path, default=Path("results/benchmark"))
    p.add_argument("--seed", type=int, default=0, help="data and fit seed")
    p.add_argument("--no-cache", action="store_true", help="no on-disk compilation cache")
    p.add_argument("--size", choices=("default", "full", "tiny"), default=None,
                   help=argparse.SUPPRESS)  # "tiny": the smoke test's seconds-long run
    args = p.parse_args(argv)
    args.size = args.size or ("full" if args.full else "default")
    args.seeds = args.seeds or (5 if args.full else 2)
    args.tasks = [t for t in args.tasks.split(",") if t]
    unknown = sorted(set(args.tasks) - set(TASKS))
    if unknown:
        p.error(f"unknown task(s) {unknown}; choose from {', '.join(TASKS)}")
    if args.seeds < 1 or (args.splits is not None and args.splits < 1):
        p.error("--seeds and --splits must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns ``{"records", "paths", "runtime_s", "headline"}``."""
    args = parse_args(argv)
    if not args.no_cache:
        default = Path.home() / ".cache" / "bdl" / "jax"
        enable_compilation_cache(os.environ.get("BDL_JAX_CACHE", default))
    methods = _methods.select_methods([m for m in args.methods.split(",") if m])
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)

    total = sum(len(methods) + (1 if t == "route" else 0) for t in args.tasks)
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    route = None
    sk: dict[str, _sklearn.SklearnResult] = {}
    with tqdm(total=total, desc="benchmark", unit="fit") as bar:
        if "route" in args.tasks:
            route = _route.run(methods, args.seeds, protocol=args.size, seed=args.seed,
                               progress=bar)
            records += route.records
            notes += route.notes
        for task in ("diabetes", "digits"):
            if task in args.tasks:
                sk[task] = _sklearn.run(task, methods, protocol=args.size,
                                        num_splits=args.splits, seed=args.seed, progress=bar)
                records += sk[task].records
                notes += sk[task].notes
    runtime = time.perf_counter() - start

    paths = [args.out / "records.csv"]
    R.write_csv(records, paths[0])
    every = sorted({r["method"] for r in records}, key=lambda m: (m == "truth", m))
    col = _plots.colours(every)
    md: list[str] = []
    bullets: list[str] = []
    headline = None
    if route is not None:
        sec, b, headline = _markdown.route_section(records, notes)
        md += sec
        bullets += b
        paths += _route_figures(route, records, col, args.out)
    for task in sk:
        sec, b = _markdown.sklearn_section(task, records)
        md += sec
        bullets += b
    fig = _plots.sklearn_reliability(sk["diabetes"].curves if "diabetes" in sk else None,
                                     sk["digits"].curves if "digits" in sk else None, col,
                                     args.out / "sklearn_reliability.png")
    if fig is not None:
        paths.append(fig)
    fig = _plots.sklearn_decisions(sk["diabetes"].curves if "diabetes" in sk else None,
                                   sk["digits"].curves if "digits" in sk else None, col,
                                   args.out / "sklearn_decisions.png",
                                   treat_threshold=_sklearn.TREAT_COST / _sklearn.MISS_COST)
    if fig is not None:
        paths.append(fig)
    report = args.out / "report.md"
    report.write_text(_header(args, methods, runtime) + "\n".join(md) + "\n"
                      + _closing(bullets, paths, notes))
    paths.insert(1, report)
    text = _markdown.headline_text(headline) if headline else ""
    if text:
        print(text)
    print(f"runtime {runtime:.0f} s; wrote " + ", ".join(str(p) for p in paths))
    return {"records": records, "paths": paths, "runtime_s": runtime, "headline": text}


def _route_figures(route: _route.RouteResult, records, col, out: Path) -> list[Path]:
    cols = R.ROUTE_COLUMNS + tuple(f"coverage_90_{r}" for r in _plots.ROUTES)
    summaries = {c: R.summarise(R.select(records, "route", c), cols) for c in ("test", "shift")}
    titles = {c: t.capitalize() for c, t in _route.CONDITIONS.items()}
    band_methods = [m for m in ("map_homo", "map", "hmc" if "hmc" in route.bands else "ensemble",
                                "cqr") if m in route.bands]
    return [
        _plots.reliability(route.curves, titles, col, out / "route_reliability.png"),
        _plots.decision_calibration(route.curves["shift"], col,
                                    out / "route_decision_calibration.png"),
        _plots.regret(summaries, titles, col, out / "route_regret.png"),
        _plots.evpi_vs_regret(summaries, titles, col, out / "route_evpi.png"),
        _plots.accuracy_vs_decision(summaries, titles, col,
                                    out / "route_accuracy_vs_decision.png"),
        _plots.coverage(summaries["test"], list(_markdown.COVERAGE_METHODS), col,
                        out / "route_coverage.png"),
        _plots.bands(route.bands, band_methods, col, out / "route_bands.png"),
    ]


def _header(args, methods: list[str], runtime: float) -> str:
    return (f"# Decision-aware benchmark\n\n"
            f"Protocol: `{args.size}`; approximators: {', '.join(methods)}; route-choice seeds: "
            f"{args.seeds}; tasks: {', '.join(args.tasks)}. Runtime {runtime:.0f} s on "
            f"{platform.machine()} ({os.cpu_count()} CPU cores visible, JAX "
            f"{jax.default_backend()}). Generated by `python -m experiments.benchmark`.\n\n")


def _closing(bullets: list[str], paths: list[Path], notes: list[str]) -> str:
    lines = ["## Interpretation (generated from the numbers above)", ""]
    lines += [f"- {b}" for b in bullets] + [""]
    lines += ["## Figures", ""]
    lines += [f"![{p.stem}]({p.name})" for p in paths if p.suffix == ".png"] + [""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["Every record (task, condition, method, seed, metrics) is in `records.csv`.", ""]
    return "\n".join(lines)
