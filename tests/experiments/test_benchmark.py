"""Smoke test of the decision-aware benchmark at tiny size: the pipeline runs end to end and
writes a consistent CSV, report and figures. (The full run is a benchmark, not a test.)"""

import csv

import pytest

from experiments import benchmark
from experiments.benchmark import _methods, _report


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmark")
    result = benchmark.main(["--size", "tiny", "--methods", "map", "--seeds", "2",
                             "--splits", "2", "--out", str(out), "--no-cache"])
    return out, result


def test_writes_csv_report_and_figures(run):
    out, result = run
    names = {p.name for p in result["paths"]}
    assert {"records.csv", "report.md", "route_reliability.png", "route_bands.png",
            "route_decision_calibration.png", "route_regret.png",
            "sklearn_reliability.png"} <= names
    for p in result["paths"]:
        assert p.exists() and p.stat().st_size > 0
    report = (out / "report.md").read_text()
    for heading in ("Route choice", "Diabetes", "Digits", "Spearman", "Interpretation",
                    "Conformal coverage"):
        assert heading in report
    assert "on-time" in result["headline"]


def test_records_cover_every_method_seed_and_condition(run):
    out, _ = run
    with (out / "records.csv").open() as f:
        rows = list(csv.DictReader(f))
    route = [r for r in rows if r["task"] == "route"]
    methods = {r["method"] for r in route}
    assert methods == {"map", "map_homo", "point", "split_conformal", "cqr", "truth"}
    for m in methods - {"truth"}:
        got = {(r["condition"], r["seed"]) for r in route if r["method"] == m}
        assert got == {(c, s) for c in ("test", "shift") for s in ("0", "1")}
    for r in route:
        assert 0.0 <= float(r["on_time"]) <= 1.0
        assert float(r["regret"]) >= 0.0 and float(r["on_time"]) + float(r["regret"]) <= 1.0 + 1e-6
        assert sum(float(r[f"pick_{k}"]) for k in ("city", "highway", "forest")) == \
            pytest.approx(1.0)
    assert {r["method"] for r in rows if r["task"] == "diabetes"} == {"map", "point"}
    digits = [r for r in rows if r["task"] == "digits"]
    assert len(digits) == 2 and all(0.0 <= float(r["accuracy"]) <= 1.0 for r in digits)


def test_presets_and_rankings():
    assert _methods.method_options("ensemble", "full")["num_members"] == 10
    assert _methods.method_options("map", "tiny")["epochs"] == 20
    assert _methods.method_options("not-yet-registered") == {}
    with pytest.raises(ValueError, match="Unknown method"):
        _methods.select_methods(["nope"])
    summary = {m: {"kind": "approximator", "rmse": (r, 0.0), "on_time": (u, 0.0)}
               for m, r, u in (("a", 1.0, 0.7), ("b", 2.0, 0.8), ("c", 3.0, 0.9))}
    rk = _report.ranking(summary, "rmse", "on_time")
    assert rk["rho"] == pytest.approx(-1.0)
    assert ("a", "c", pytest.approx(0.2)) in rk["pairs"]


def test_sgd_learning_rate_becomes_a_step_size_per_data_set_size():
    options = _methods.method_options("cyclical_sgld")
    assert "sgd_learning_rate" in options and "step_size" not in options
    resolved = _methods.resolve_options(options, num_data=500)
    assert "sgd_learning_rate" not in resolved
    assert resolved["step_size"] == pytest.approx(options["sgd_learning_rate"] / 500)
    assert _methods.resolve_options({"epochs": 3}, 10) == {"epochs": 3}
