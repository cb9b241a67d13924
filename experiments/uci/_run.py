"""Command line and crash-safe orchestration of the UCI experiment.

Work units are (data set, split) pairs; each finished unit of work is one record per method
(``RUN_ID = <dataset>-<split>-<method>``) plus the tuning record (``tune-<dataset>-<split>``),
written at once to ``OUT/runs/`` by ``bdl.sweeps.ResultsStore``. A restarted run skips every
record already there; ``--shard i/n`` runs this process's share of the units (job arrays),
``--launcher submitit`` is not needed: start ``n`` processes with ``--shard 0/n .. n-1/n`` on
one store and then ``--report-only``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import jax
import numpy as np

import bdl
from bdl.data import uci, uci_datasets, uci_info
from bdl.sweeps import ResultsStore, parse_shard, shard_configurations
from experiments.uci import _protocol as P
from experiments.uci import _report


def default_root() -> Path:
    """``$BDL_UCI_ROOT``, else the first ``shared/data/uci`` beside the checkout or one of its
    ancestors (``../shared/data/uci`` from the project root in the usual layout)."""
    if os.environ.get("BDL_UCI_ROOT"):
        return Path(os.environ["BDL_UCI_ROOT"])
    repo = Path(__file__).resolve().parents[2]
    for base in repo.parents:
        candidate = base / "shared" / "data" / "uci"
        if candidate.is_dir():
            return candidate
    return repo.parent / "shared" / "data" / "uci"


DEFAULT_ROOT = default_root()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m experiments.uci",
        description="UCI regression, standard splits: every approximator vs published numbers.")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="the CPU subset: 3 splits per data set, smaller sampler budgets "
                           "(the default)")
    size.add_argument("--full", action="store_true",
                      help="the whole protocol: 20 splits, wider grid, NUTS included (GPU host)")
    size.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # smoke test
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                    help="directory with one folder per data set (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=Path("results/uci"), help="results directory")
    ap.add_argument("--datasets", default="", help="comma-separated (default: all under --root)")
    ap.add_argument("--methods", default="", help="comma-separated approximators "
                                                  "(default: the protocol's list)")
    ap.add_argument("--splits", default="", help="split indices, e.g. 0,1,2 or 0-19 "
                                                 "(default: the protocol's first N)")
    ap.add_argument("--shard", default="0/1", help="run shard i/n of the (data set, split) units")
    ap.add_argument("--report-only", action="store_true", help="only write the report")
    ap.add_argument("--no-cache", action="store_true", help="no on-disk compilation cache")
    args = ap.parse_args(argv)
    args.protocol_name = "full" if args.full else "tiny" if args.tiny else "quick"
    args.protocol = P.PROTOCOLS[args.protocol_name]
    try:
        args.shard = parse_shard(args.shard)
    except ValueError as err:
        ap.error(str(err))
    args.methods = [m for m in args.methods.split(",") if m] or list(args.protocol.methods)
    unknown = sorted(set(args.methods) - set(bdl.available()))
    if unknown:
        ap.error(f"unknown method(s) {unknown}; available: {', '.join(bdl.available())}")
    if not args.report_only:
        try:
            known = uci_datasets(args.root)
        except FileNotFoundError as err:
            ap.error(str(err))
        args.datasets = [d for d in args.datasets.split(",") if d] or known
        missing = sorted(set(args.datasets) - set(known))
        if missing:
            ap.error(f"no data set(s) {missing} under {args.root} (found: {', '.join(known)})")
    args.splits = _parse_splits(ap, args.splits)
    return args


def _parse_splits(ap: argparse.ArgumentParser, text: str) -> list[int] | None:
    if not text:
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            out.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        ap.error(f"--splits must look like 0,1,2 or 0-19; got {text!r}")
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run (or resume) the experiment and write the report; returns the report paths."""
    args = parse_args(argv)
    start = time.perf_counter()
    if not args.no_cache:
        _enable_compilation_cache(args.out / ".jax-cache")
    store = ResultsStore(args.out)
    store.clean_temp()
    if not args.report_only:
        units = _units(args)
        mine = shard_configurations(units, *args.shard)
        _run_units(mine, args, store)
    records = store.records()
    paths = _report.write(records, args.out, protocol=args.protocol_name,
                          runtime_s=time.perf_counter() - start, machine=_machine())
    print(f"report: {paths['report']}  ({len(records)} records, "
          f"{time.perf_counter() - start:.0f} s)", flush=True)
    return paths


def _units(args: argparse.Namespace) -> list[dict[str, Any]]:
    units = []
    for name in args.datasets:
        n = uci_info(name, args.root).num_splits
        splits = args.splits if args.splits is not None else range(min(args.protocol.num_splits, n))
        for k in splits:
            if not 0 <= k < n:
                raise SystemExit(f"split {k} out of range for {name} ({n} splits)")
            units.append({"config_id": f"{name}-{k:02d}", "dataset": name, "split": int(k)})
    return units


def _run_units(units: list[dict[str, Any]], args: argparse.Namespace,
               store: ResultsStore) -> None:
    from tqdm.auto import tqdm

    done = store.run_ids()
    todo = [(u, [m for m in args.methods if _rid(u, m) not in done]) for u in units]
    todo = [(u, ms) for u, ms in todo if ms]
    total = sum(len(ms) for _, ms in todo)
    skipped = len(units) * len(args.methods) - total
    bar = tqdm(total=total, desc=f"uci {args.protocol_name}", unit="fit", file=sys.stderr,
               dynamic_ncols=True)
    if skipped:
        bar.write(f"resuming: {skipped} finished runs in {args.out} are kept", file=sys.stderr)
    try:
        for unit, methods in todo:
            bar.set_postfix_str(unit["config_id"])
            for record in _run_unit(unit, methods, args, store):
                store.write(record)
                bar.update(1)
                if record["status"] != "ok":
                    bar.write(f"{record['run_id']}: FAILED {record['error'][:200]}", file=sys.stderr)
    finally:
        bar.close()


def _run_unit(unit: dict[str, Any], methods: list[str], args: argparse.Namespace,
              store: ResultsStore):
    """Records of ``methods`` on one (data set, split); tuning is read back if stored."""
    split = uci(unit["dataset"], unit["split"], args.root)
    key = jax.random.fold_in(jax.random.key(2026), unit["split"])
    tune_id = f"tune-{unit['config_id']}"
    if tune_id in store:
        hyper = store.read(tune_id)
    else:
        hyper = P.tune(split, args.protocol, jax.random.fold_in(key, 0), tuple(methods))
        hyper = {**_base(unit, args), "run_id": tune_id, "kind": "tuning", "status": "ok",
                 **hyper}
        store.write(hyper)
    for method, post, seconds in P.fit_methods(split, hyper, methods, args.protocol,
                                               jax.random.fold_in(key, 1)):
        record = {**_base(unit, args), "run_id": _rid(unit, method), "kind": "run",
                  "method": method, **_chosen(hyper, method),
                  "fit_s": seconds, "n_train": int(len(split.y_train)),
                  "n_test": int(len(split.y_test))}
        if isinstance(post, Exception):
            record.update(status="failed", error=f"{type(post).__name__}: {post}",
                          traceback="".join(traceback.format_exception(post))[-4000:])
        else:
            try:
                record.update(P.score(post, split, jax.random.fold_in(key, 2)),
                              status="ok", error=None)
                record.update(_diagnostics(post))
            except Exception as err:  # noqa: BLE001
                record.update(status="failed", error=f"{type(err).__name__}: {err}",
                              traceback=traceback.format_exc()[-4000:])
        yield record


def _diagnostics(post: Any) -> dict[str, Any]:
    """Laplace's tuned hyper-parameters; samplers' split R-hat, ESS and HMC statistics."""
    info = getattr(post, "info", {}) or {}
    out: dict[str, Any] = {}
    precision = np.ravel(np.asarray(info.get("prior_precision") or [], dtype=float))
    if precision.size == 1:
        out["laplace.prior_precision"] = float(precision[0])
    if info.get("noise_scale") is not None:
        out["laplace.noise_scale"] = float(info["noise_scale"])
    diag = info.get("diagnostics")
    if isinstance(diag, dict):
        for name in ("rhat_max", "ess_median", "divergences", "acceptance_rate"):
            value = diag.get(name)
            if isinstance(value, (int, float)):
                out[f"diag.{name}"] = float(value)
    return out


def _chosen(hyper: dict[str, Any], method: str) -> dict[str, Any]:
    """The hyper-parameters ``method`` was fitted with (``_protocol.chosen_point``)."""
    point = P.chosen_point(hyper, method)
    return {k: point[k] for k in ("noise", "prior_precision", "epochs")}


def _rid(unit: dict[str, Any], method: str) -> str:
    return f"{unit['config_id']}-{method}"


def _base(unit: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    return {"dataset": unit["dataset"], "split": unit["split"], "protocol": args.protocol_name,
            "finished_at": datetime.datetime.now().isoformat(timespec="seconds"),
            "host": socket.gethostname(), "bdl_version": bdl.__version__}


def _machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, "
            f"{', '.join(sorted({d.platform for d in jax.devices()}))}, jax {jax.__version__}")


def _enable_compilation_cache(path: Path) -> None:
    """Every split of a data set has the same shapes: their programs compile once."""
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
