"""Submitting the shards of a sweep as a job array through submitit (SLURM or local).

submitit is optional (``pip install submitit``). ``cluster="slurm"`` submits a SLURM job
array; ``"local"`` runs the same job array as local processes (what the tests use);
``None`` lets submitit pick (SLURM where ``sbatch`` exists, else local). Every job runs
``run_sweep(..., resume=True, shard=(i, n))`` into the same store, so a requeued or
restarted job skips the runs that are already finished.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bdl.sweeps._config import SweepSpec, load_config
from bdl.sweeps._runner import SweepSummary, run_sweep

__all__ = ["run_shard", "submit_shards"]


def submit_shards(
    spec: SweepSpec | str | os.PathLike | Mapping[str, Any],
    out: str | os.PathLike,
    num_shards: int,
    *,
    cluster: str | None = None,
    folder: str | os.PathLike | None = None,
    retry_failed: bool = False,
    wait: bool = False,
    **parameters: Any,
) -> list[Any]:
    """Submit shards ``0/n .. n-1/n`` of a sweep as one submitit job array.

    Args:
      spec: a ``SweepSpec``, a TOML path or a parsed mapping.
      out: the results store every job writes to (shared storage on a cluster).
      num_shards: ``n``, the number of jobs.
      cluster: ``"slurm"``, ``"local"`` or ``None`` (submitit's auto-detection).
      folder: submitit's folder for logs and pickles (default ``OUT/submitit``).
      retry_failed: run failed runs again.
      wait: block until every job has finished (re-raising a job's exception).
      **parameters: submitit executor parameters, e.g. ``timeout_min=60``,
        ``slurm_partition="gpu"``, ``gpus_per_node=1``, ``slurm_array_parallelism=16``.

    Returns:
      The submitit jobs; ``job.result()`` is that shard's ``SweepSummary``.
    """
    try:
        import submitit
    except ImportError as err:
        raise ImportError("`--launcher submitit` needs submitit: `pip install submitit`.") from err
    if num_shards < 1:
        raise ValueError(f"`num_shards` must be >= 1; got {num_shards}.")
    if not isinstance(spec, SweepSpec):
        spec = load_config(spec)
    out = Path(out).resolve()
    folder = Path(folder) if folder is not None else out / "submitit"
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=cluster)
    executor.update_parameters(name=f"sweep-{spec.name}", **parameters)
    n = int(num_shards)
    jobs = executor.map_array(run_shard, [spec] * n, [str(out)] * n, list(range(n)), [n] * n,
                              [retry_failed] * n)
    if wait:
        for job in jobs:
            job.result()
    return jobs


def run_shard(spec: SweepSpec, out: str, index: int, count: int, retry_failed: bool = False
              ) -> SweepSummary:
    """One job of the array: shard ``index/count``, resuming, without a progress bar."""
    return run_sweep(spec, out, resume=True, shard=(index, count), retry_failed=retry_failed,
                     progress=False)
