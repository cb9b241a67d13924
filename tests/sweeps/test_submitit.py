"""--launcher submitit: the shards as a job array, run for real by submitit's LocalExecutor."""

from __future__ import annotations

import os

import pytest

from bdl import sweeps

submitit = pytest.importorskip(
    "submitit", reason="submitit is an optional extra (`pip install submitit`); not installed")


def test_local_job_array_covers_the_sweep(tmp_path, tiny_toml, sub_env, monkeypatch):
    for name in ("PYTHONPATH", "JAX_COMPILATION_CACHE_DIR",
                 "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                 "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "JAX_PLATFORMS"):
        monkeypatch.setenv(name, sub_env[name])  # the jobs inherit this environment
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    out = tmp_path / "out"
    jobs = sweeps.submit_shards(tiny_toml, out, 2, cluster="local", timeout_min=10)
    assert len(jobs) == 2
    summaries = [job.result() for job in jobs]
    spec = sweeps.load_config(tiny_toml)
    assert sum(s.ran for s in summaries) == spec.num_runs()
    assert all(s.failed == 0 and s.skipped == 0 for s in summaries)
    assert {s.configurations for s in summaries} == {2}

    records = sweeps.collate(out)
    expected = {(c["config_id"], s) for c in spec.configurations() for s in spec.seeds}
    got = [(r["config_id"], r["seed"]) for r in records]
    assert len(got) == len(set(got)) == len(expected) and set(got) == expected
    assert len({r["host"] for r in records}) == 1 and os.path.isdir(out / "submitit")
