"""Sweeps: a grid of configurations x seeds, seeds vmapped, crash-safe results, shards.

Example::

    from bdl import sweeps

    spec = sweeps.load_config("experiments/configs/sweep_small.toml")
    summary = sweeps.run_sweep(spec, "results/sweep_small", resume=True)
    table = sweeps.collate("results/sweep_small")            # list of flat dicts
    frame = sweeps.collate("results/sweep_small", as_frame=True)   # with pandas installed

A run is one configuration and one seed: ``bdl.fit`` (all seeds of a configuration together
through ``bdl.approximators.fit_seeds``), ``predict`` on the data set's test split,
``bdl.metrics.evaluate`` and ``bdl.decisions.evaluate``, one record written atomically to
``OUT/runs/<run_id>.json``. Command line: ``python -m experiments.sweep CONFIG --out DIR``.
"""

from bdl.sweeps._config import (
    BUILTIN_UTILITIES,
    ConfigError,
    SweepSpec,
    config_hash,
    load_config,
    run_id,
)
from bdl.sweeps._datasets import Dataset, available_datasets, get_dataset, register_dataset
from bdl.sweeps._launch import run_shard, submit_shards
from bdl.sweeps._runner import (
    SweepSummary,
    build_utility,
    run_configuration,
    run_sweep,
    seed_keys,
)
from bdl.sweeps._sharding import (
    SEED_AXIS,
    init_distributed,
    parse_shard,
    seed_mesh,
    shard_configurations,
)
from bdl.sweeps._store import ResultsStore, collate, to_dataframe

__all__ = [
    "BUILTIN_UTILITIES",
    "ConfigError",
    "Dataset",
    "ResultsStore",
    "SEED_AXIS",
    "SweepSpec",
    "SweepSummary",
    "available_datasets",
    "build_utility",
    "collate",
    "config_hash",
    "get_dataset",
    "init_distributed",
    "load_config",
    "parse_shard",
    "register_dataset",
    "run_configuration",
    "run_id",
    "run_shard",
    "run_sweep",
    "seed_keys",
    "seed_mesh",
    "shard_configurations",
    "submit_shards",
    "to_dataframe",
]
