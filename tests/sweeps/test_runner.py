"""Running sweeps in-process: failures are recorded and do not stop the sweep; resumption."""

from __future__ import annotations

import pytest

from bdl import sweeps
from bdl.sweeps import _datasets


@pytest.fixture
def huge_targets(monkeypatch):
    """'sine_huge': the sine data with targets x 1e30, so MAP training overflows to NaN."""

    def build():
        d = sweeps.get_dataset("sine")
        return d._replace(name="sine_huge", y_train=d.y_train * 1e30, y_test=d.y_test * 1e30)

    monkeypatch.setitem(_datasets._REGISTRY, "sine_huge", build)
    sweeps.get_dataset.cache_clear()
    yield
    sweeps.get_dataset.cache_clear()


def test_invalid_options_are_refused_when_the_sweep_is_loaded(tmp_path):
    raw = {"name": "bad", "seeds": 1, "grid": {"method": "ensemble", "dataset": "sine"},
           "options": {"ensemble": {"num_members": 0}}}
    with pytest.raises(sweeps.ConfigError, match="options.ensemble.num_members"):
        sweeps.run_sweep(raw, tmp_path, progress=False)


def test_failing_runs_are_recorded_and_the_sweep_goes_on(tmp_path, jax_cache, huge_targets):
    raw = {
        "name": "failing",
        "seeds": 2,
        "grid": {"method": ["map", "ensemble"], "dataset": ["sine", "sine_huge"], "hidden": 4},
        # valid options (checked at load time), but no training data left at run time
        "options": {"epochs": 10, "learning_rate": 1e-2,
                    "ensemble": {"validation_fraction": 0.999}},
    }
    summary = sweeps.run_sweep(raw, tmp_path, progress=False)
    assert (summary.runs, summary.ran, summary.failed) == (8, 8, 6)
    records = sweeps.collate(tmp_path)
    assert len(records) == 8
    by = {(r["method"], r["dataset"]): r for r in records if r["seed"] == 1}
    ok = by[("map", "sine")]
    assert ok["status"] == "ok" and ok["error"] is None
    assert ok["rmse"] < 1.5 and "regret" in ok and ok["num_devices"] == 1
    nan = by[("map", "sine_huge")]
    assert nan["status"] == "failed" and "NonFiniteError" in nan["error"]
    assert nan["error"].startswith("NonFiniteError")  # a FloatingPointError, raised at once
    bad = by[("ensemble", "sine")]
    assert bad["status"] == "failed" and "validation_fraction" in bad["error"]
    assert "Traceback" in bad["traceback"]

    with pytest.raises(FileExistsError, match="resume"):
        sweeps.run_sweep(raw, tmp_path, progress=False)
    again = sweeps.run_sweep(raw, tmp_path, resume=True, progress=False)
    assert (again.skipped, again.ran) == (8, 0)
    retry = sweeps.run_sweep(raw, tmp_path, resume=True, retry_failed=True, progress=False)
    assert (retry.skipped, retry.ran, retry.failed) == (2, 6, 6)
    assert len(sweeps.collate(tmp_path)) == 8
