"""--launcher submitit: the shards as a job array, run for real by submitit's LocalExecutor."""

from __future__ import annotations

import re

import pytest

from bdl import sweeps
from experiments import sweep as cli

submitit = pytest.importorskip(
    "submitit", reason="submitit is an optional extra (`pip install submitit`); not installed")


def test_local_job_array_covers_the_sweep(tmp_path, tiny_toml, sub_env, monkeypatch, capsys):
    for name in ("PYTHONPATH", "JAX_COMPILATION_CACHE_DIR",
                 "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                 "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "JAX_PLATFORMS"):
        monkeypatch.setenv(name, sub_env[name])  # the jobs inherit this environment
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    out = tmp_path / "out"
    argv = [str(tiny_toml), "--out", str(out), "--launcher", "submitit", "--num-shards", "2",
            "--cluster", "local", "--timeout-min", "10", "--wait"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("submitted 2 job(s)")
    ran = [int(n) for n in re.findall(r": (\d+) ran \(0 failed\), 0 already done", printed)]
    spec = sweeps.load_config(tiny_toml)
    assert sorted(ran) == [2, 4] and sum(ran) == spec.num_runs()  # shards of 1 and 2 configs

    records = sweeps.collate(out)
    expected = {(c["config_id"], s) for c in spec.configurations() for s in spec.seeds}
    got = [(r["config_id"], r["seed"]) for r in records]
    assert len(got) == len(set(got)) == len(expected) and set(got) == expected
    assert all(r["status"] == "ok" for r in records)
    assert (out / "submitit").is_dir()
