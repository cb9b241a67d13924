"""The results store: atomic records, temp files ignored, collation."""

from __future__ import annotations

import importlib.util
import json
import os
import time

import pytest

from bdl import sweeps


def test_write_is_atomic_and_leaves_no_temp(tmp_path):
    store = sweeps.ResultsStore(tmp_path)
    store.write({"run_id": "a1", "status": "ok", "rmse": 0.5, "nll": float("inf")})
    assert "a1" in store and "b2" not in store
    assert [p.name for p in store.runs.iterdir()] == ["a1.json"]
    assert store.read("a1")["nll"] == float("inf")
    store.write({"run_id": "a1", "status": "ok", "rmse": 0.25})  # replaced whole
    assert store.read("a1")["rmse"] == 0.25


def test_temp_files_of_killed_writers_are_ignored_and_cleaned(tmp_path):
    store = sweeps.ResultsStore(tmp_path)
    store.write({"run_id": "a1", "status": "ok"})
    stale = store.runs / ".tmp-dead.json"
    stale.write_text('{"run_id": "half')  # what a SIGKILL mid-write leaves
    fresh = store.runs / ".tmp-live.json"
    fresh.write_text("{")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert store.run_ids() == {"a1"}
    assert [r["run_id"] for r in sweeps.collate(tmp_path)] == ["a1"]
    assert store.clean_temp() == 1  # a concurrent writer's fresh temp file is left alone
    assert not stale.exists() and fresh.exists()


def test_a_corrupt_record_is_reported_by_name(tmp_path):
    store = sweeps.ResultsStore(tmp_path)
    (store.runs / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        store.records()


def test_spec_round_trip_and_frame(tmp_path):
    store = sweeps.ResultsStore(tmp_path)
    assert store.read_spec() is None
    store.write_spec({"name": "x", "seeds": [0]})
    assert json.loads((tmp_path / "sweep.json").read_text())["name"] == "x"
    store.write({"run_id": "r", "status": "ok", "seed": 0})
    if importlib.util.find_spec("pandas") is None:
        with pytest.raises(ImportError, match="pandas"):
            sweeps.collate(tmp_path, as_frame=True)
    else:
        frame = sweeps.collate(tmp_path, as_frame=True)
        assert list(frame["run_id"]) == ["r"]
