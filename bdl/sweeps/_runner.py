"""Running a sweep: every seed of a configuration in one compiled program, then scoring.

``run_configuration`` fits all pending seeds of one configuration with
``bdl.approximators.fit_seeds`` (one vmapped program for MAP and ensembles, the seed axis
sharded over local devices when there are several), then predicts on the test split and
scores each seed with ``bdl.metrics.evaluate`` and ``bdl.decisions.evaluate``: one flat
record per seed. A configuration or seed that raises, or trains to a non-finite loss, gives
``status="failed"`` records with the error, and the sweep goes on.

``run_sweep`` walks this process's shard of the grid, skips runs already in the store, and
writes each record the moment it exists.
"""

from __future__ import annotations

import datetime
import os
import socket
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import bdl
from bdl import decisions, metrics
from bdl.approximators import fit_seeds
from bdl.sweeps._config import SweepSpec, load_config, run_id
from bdl.sweeps._datasets import Dataset, get_dataset
from bdl.sweeps._sharding import seed_mesh, shard_configurations
from bdl.sweeps._store import ResultsStore

__all__ = ["SweepSummary", "build_utility", "run_configuration", "run_sweep", "seed_keys"]

_MAX_ERROR_CHARS = 4000


class SweepSummary(NamedTuple):
    """What ``run_sweep`` did in this process.

    Attributes:
      out: the store directory.
      configurations: configurations in this shard.
      runs: runs (configuration x seed) in this shard.
      skipped: runs already finished in the store, not recomputed.
      ran: runs computed now.
      failed: of those, runs recorded as failed.
      seconds: wall-clock time of the call.
    """

    out: Path
    configurations: int
    runs: int
    skipped: int
    ran: int
    failed: int
    seconds: float


def run_sweep(
    spec: SweepSpec | str | os.PathLike | Mapping[str, Any],
    out: str | os.PathLike,
    *,
    resume: bool = False,
    shard: tuple[int, int] = (0, 1),
    retry_failed: bool = False,
    progress: bool = True,
    devices: Sequence[Any] | None = None,
) -> SweepSummary:
    """Run shard ``shard = (i, n)`` of a sweep into the store at ``out``.

    Args:
      spec: a ``SweepSpec``, a TOML path or a parsed mapping (see ``load_config``).
      out: the results store directory (created if missing).
      resume: skip runs already in the store. Without it, finding any run of this shard
        there raises ``FileExistsError`` (nothing is overwritten).
      shard: ``(index, count)``: this process's share of the configurations.
      retry_failed: with ``resume``, run failed runs again (their records are replaced).
      progress: show a tqdm progress bar over runs with an ETA (on stderr).
      devices: devices for the seed axis (default: this process's local devices).

    Returns:
      A ``SweepSummary``.
    """
    t_start = time.perf_counter()
    if not isinstance(spec, SweepSpec):
        spec = load_config(spec)
    store = ResultsStore(out)
    store.clean_temp()
    configs = shard_configurations(spec.configurations(), *shard)

    finished = store.run_ids()
    work: list[tuple[dict[str, Any], list[int]]] = []
    skipped = 0
    for config in configs:
        done = [s for s in spec.seeds if _is_done(store, finished, config, s, retry_failed)]
        if done and not resume:
            raise FileExistsError(
                f"{store.root} already holds {len(done)} finished run(s) of this sweep "
                f"(e.g. config {config['config_id']}); pass resume=True (--resume) to skip them."
            )
        skipped += len(done)
        pending = [s for s in spec.seeds if s not in done]
        if pending:
            work.append((config, pending))

    store.write_spec(spec.to_dict())
    total = sum(len(p) for _, p in work)
    failed = 0
    bar = _progress(progress, total, spec.name, shard)
    try:
        for config, seeds in work:
            if bar is not None:
                bar.set_description(_label(config))
            for record in run_configuration(config, seeds, spec.utilities[config["utility"]],
                                            devices=devices):
                store.write(record)
                failed += record["status"] != "ok"
            if bar is not None:
                bar.update(len(seeds))
                bar.set_postfix(failed=failed)
    finally:
        if bar is not None:
            bar.close()
    return SweepSummary(store.root, len(configs), len(configs) * len(spec.seeds), skipped,
                        total, failed, time.perf_counter() - t_start)


def run_configuration(
    config: Mapping[str, Any],
    seeds: Sequence[int],
    utility: Mapping[str, Any],
    *,
    devices: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    """Fit, predict and score one configuration for every seed; one record per seed.

    Args:
      config: a configuration from ``SweepSpec.configurations()``.
      seeds: the seeds to run (all fitted together by ``fit_seeds``).
      utility: the utility definition ``{"kind": ..., **arguments}`` (see ``build_utility``).
      devices: devices for the seed axis (default: local devices; a mesh is used when there
        are several and they divide ``len(seeds)``).

    Returns:
      Records with the configuration's fields, ``seed``, ``status`` (``"ok"``/``"failed"``),
      ``error``, the metrics of both layers and timings. Seed ``s`` is fitted with
      ``key=jax.random.key(s)`` exactly as ``bdl.fit(..., key=jax.random.key(s))`` would.
    """
    seeds = [int(s) for s in seeds]
    try:
        data = get_dataset(config["dataset"])
        model, likelihood = _model_and_likelihood(config, data)
        u = build_utility(utility, data)
        options = _fit_options(config["options"])
        keys = seed_keys(seeds)
        mesh = seed_mesh(len(seeds), devices)
        t0 = time.perf_counter()
        posteriors = fit_seeds(config["method"], model, likelihood,
                               (data.x_train, data.y_train), keys=keys, mesh=mesh, **options)
        jax.block_until_ready([getattr(p, "particles", None) for p in posteriors])
        fit_s = time.perf_counter() - t0
    except Exception as err:  # noqa: BLE001 - a failing configuration must not stop the sweep
        return [_record(config, s, _failure(err)) for s in seeds]

    timing = {"fit_time_s": fit_s / len(seeds), "fit_batch_time_s": fit_s,
              "batch_seeds": len(seeds), "num_devices": 1 if mesh is None else mesh.size}
    records = []
    for seed, posterior in zip(seeds, posteriors, strict=True):
        t0 = time.perf_counter()
        try:
            scores = _score(posterior, data, u, jax.random.key(seed))
            scores["status"], scores["error"] = "ok", None
        except Exception as err:  # noqa: BLE001
            scores = _failure(err)
        scores["eval_time_s"] = time.perf_counter() - t0
        records.append(_record(config, seed, {**timing, **scores}))
    return records


def seed_keys(seeds: Sequence[int]) -> jax.Array:
    """Keys ``[S]``; entry ``i`` equals ``jax.random.key(seeds[i])``."""
    return jax.vmap(jax.random.key)(jnp.asarray(seeds, dtype=jnp.int32))


def build_utility(definition: Mapping[str, Any], data: Dataset) -> decisions.Utility:
    """A ``bdl.decisions`` utility from a sweep definition ``{"kind": ..., **arguments}``.

    An ``actions`` table ``{start, stop, num}`` becomes ``numpy.linspace(start, stop, num)``;
    ``selective`` takes its number of classes from the data set when not given.
    """
    args = {k: v for k, v in definition.items() if k != "kind"}
    if isinstance(args.get("actions"), Mapping):
        grid = args["actions"]
        args["actions"] = np.linspace(grid["start"], grid["stop"], int(grid["num"]))
    if definition["kind"] == "selective":
        args.setdefault("num_classes", data.num_classes)
    if "matrix" in args:
        args["matrix"] = np.asarray(args["matrix"], dtype=np.float32)
    return decisions.get(definition["kind"], **args)


# --------------------------------------------------------------------------- helpers
def _model_and_likelihood(config: Mapping[str, Any], data: Dataset) -> tuple[Any, Any]:
    if data.task == "classification":
        likelihood = bdl.likelihoods.Categorical()
        out = int(data.num_classes)
    else:
        likelihood = bdl.likelihoods.Gaussian(config["noise"])
        out = likelihood.output_size(1)
    model = bdl.models.MLP(tuple(config["hidden"]), out=out, activation=config["activation"])
    return model, likelihood


def _fit_options(options: Mapping[str, Any]) -> dict[str, Any]:
    options = dict(options)
    if "prior_precision" in options:
        options["prior"] = bdl.priors.IsotropicGaussian(float(options.pop("prior_precision")))
    return options


def _score(posterior: Any, data: Dataset, u: decisions.Utility, key: jax.Array) -> dict:
    _check_training(posterior)
    k_pred, k_dec = jax.random.split(jax.random.fold_in(key, 1))
    pred = posterior.predict(data.x_test, key=k_pred)
    mean = np.asarray(pred.probs() if pred.is_classification else pred.mean())
    if not np.all(np.isfinite(mean)):
        raise FloatingPointError("non-finite predictions on the test split")
    scores: dict[str, Any] = dict(metrics.evaluate(pred, data.y_test))
    for name, value in decisions.evaluate(pred, data.y_test, u, key=k_dec).items():
        if name in scores:
            raise KeyError(f"decision metric {name!r} collides with an accuracy metric")
        scores[name] = value
    return scores


def _check_training(posterior: Any) -> None:
    """Raise ``FloatingPointError`` if the recorded training loss ended non-finite."""
    history = getattr(posterior, "info", {}).get("history")
    if not isinstance(history, Mapping) or "train_loss" not in history:
        return
    loss = np.asarray(history["train_loss"], dtype=np.float64)
    if loss.size and not np.all(np.isfinite(loss[..., -1])):
        bad = np.flatnonzero(~np.isfinite(loss.reshape(-1, loss.shape[-1])).all(axis=0))
        raise FloatingPointError(
            f"non-finite training loss (first at epoch {int(bad[0]) + 1} of {loss.shape[-1]})"
        )


def _failure(err: BaseException) -> dict[str, Any]:
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return {"status": "failed", "error": f"{type(err).__name__}: {err}"[:_MAX_ERROR_CHARS],
            "traceback": text[-_MAX_ERROR_CHARS:]}


def _record(config: Mapping[str, Any], seed: int, fields: Mapping[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "run_id": run_id(config["config_id"], seed),
        "config_id": config["config_id"],
        "seed": seed,
    }
    for key, value in config.items():
        if key == "options":
            record.update({f"options.{k}": v for k, v in sorted(value.items())})
        elif key != "config_id":
            record[key] = value
    record.update(fields)
    record["finished_at"] = datetime.datetime.now().isoformat(timespec="seconds")
    record["host"] = socket.gethostname()
    record["bdl_version"] = bdl.__version__
    return record


def _is_done(store: ResultsStore, finished: set[str], config: Mapping[str, Any], seed: int,
             retry_failed: bool) -> bool:
    rid = run_id(config["config_id"], seed)
    if rid not in finished:
        return False
    return not retry_failed or store.read(rid).get("status") == "ok"


def _label(config: Mapping[str, Any]) -> str:
    return f"{config['method']}/{config['dataset']}/{config['config_id'][:6]}"


def _progress(enabled: bool, total: int, name: str, shard: tuple[int, int]):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    desc = name if shard == (0, 1) else f"{name} [{shard[0]}/{shard[1]}]"
    return tqdm(total=total, desc=desc, unit="run", file=sys.stderr, dynamic_ncols=True)
