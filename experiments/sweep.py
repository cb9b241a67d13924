"""Run a sweep (configuration grid x seeds) from a TOML file into a crash-safe results store.

Usage::

    python -m experiments.sweep experiments/configs/sweep_small.toml --out results/sweep_small
    python -m experiments.sweep CONFIG --out DIR --resume            # after a crash: skip done
    python -m experiments.sweep CONFIG --out DIR --resume --shard 2/8   # job 2 of 8
    python -m experiments.sweep CONFIG --out DIR --launcher submitit --num-shards 8 \\
        --cluster slurm --timeout-min 120 --slurm-partition gpu

Each finished run is written at once to ``DIR/runs/<run_id>.json``; ``bdl.sweeps.collate(DIR)``
gathers them. With ``JAX_COORDINATOR_ADDRESS`` set (multi-controller JAX), process ``i`` of
``n`` runs shard ``i/n``. Exit status: 0 when every run is ok, 1 when some failed, 2 for a
bad command line or config file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bdl import sweeps


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(prog="python -m experiments.sweep",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("config", help="sweep file (TOML)")
    ap.add_argument("--out", required=True, help="results store directory")
    ap.add_argument("--resume", action="store_true", help="skip runs already in --out")
    ap.add_argument("--retry-failed", action="store_true", help="with --resume: rerun failures")
    ap.add_argument("--shard", default=None, help="run shard i/n of the grid, e.g. 0/4")
    ap.add_argument("--launcher", choices=("local", "submitit"), default="local",
                    help="local: run here; submitit: submit --num-shards jobs as a job array")
    ap.add_argument("--num-shards", type=int, default=1, help="jobs for --launcher submitit")
    ap.add_argument("--cluster", choices=("auto", "slurm", "local"), default="auto",
                    help="submitit cluster (auto: SLURM where sbatch exists, else local)")
    ap.add_argument("--timeout-min", type=int, default=60, help="submitit job time limit")
    ap.add_argument("--slurm-partition", default=None, help="SLURM partition")
    ap.add_argument("--gpus-per-node", type=int, default=None, help="GPUs per submitit job")
    ap.add_argument("--cpus-per-task", type=int, default=None, help="CPUs per submitit job")
    ap.add_argument("--wait", action="store_true", help="submitit: wait for every job")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    try:
        spec = sweeps.load_config(args.config)
        shard = sweeps.parse_shard(args.shard) if args.shard else None
    except (sweeps.ConfigError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    if args.launcher == "submitit":
        return _submit(args, spec, shard)

    process, processes = sweeps.init_distributed()
    if processes > 1:
        if shard is not None:
            print("error: --shard cannot be combined with a multi-controller JAX job "
                  f"(this is process {process} of {processes}).", file=sys.stderr)
            return 2
        shard = (process, processes)
    shard = shard or (0, 1)
    try:
        summary = sweeps.run_sweep(spec, args.out, resume=args.resume, shard=shard,
                                   retry_failed=args.retry_failed, progress=not args.no_progress)
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{spec.name} shard {shard[0]}/{shard[1]}: {summary.configurations} configurations, "
          f"{summary.runs} runs; {summary.skipped} already done, {summary.ran} ran "
          f"({summary.failed} failed) in {summary.seconds:.1f} s -> {summary.out}")
    return 1 if summary.failed else 0


def _submit(args: argparse.Namespace, spec: sweeps.SweepSpec, shard) -> int:
    if shard is not None:
        print("error: --shard is for one job; with --launcher submitit use --num-shards.",
              file=sys.stderr)
        return 2
    params = {"timeout_min": args.timeout_min}
    for name in ("slurm_partition", "gpus_per_node", "cpus_per_task"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    jobs = sweeps.submit_shards(spec, args.out, args.num_shards,
                                cluster=None if args.cluster == "auto" else args.cluster,
                                retry_failed=args.retry_failed, **params)
    print(f"submitted {len(jobs)} job(s): {', '.join(j.job_id for j in jobs)}")
    if not args.wait:
        return 0
    failed = 0
    for job in jobs:
        summary = job.result()
        failed += summary.failed
        print(f"job {job.job_id}: {summary.ran} ran ({summary.failed} failed), "
              f"{summary.skipped} already done")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
