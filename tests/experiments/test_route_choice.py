"""Every number of docs/route-choice.md, reproduced by experiments.route_choice."""

import json
import runpy
from pathlib import Path

import pytest
from pytest import approx
from scipy.stats import norm

from experiments import route_choice

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def numbers():
    return route_choice.route_choice_numbers()


def test_mse_of_the_point_tools(numbers):
    assert numbers["tools"]["A"]["mse"] == approx(73 / 3, rel=1e-6)  # 24.3
    assert numbers["tools"]["B"]["mse"] == approx(65 / 3, rel=1e-6)  # 21.7
    assert numbers["tools"]["C"]["mse"] == approx(57 / 3, rel=1e-6)  # of its mean: 19.0
    assert numbers["tools"]["B"]["mse"] < numbers["tools"]["A"]["mse"]


def test_only_the_highway_is_on_time(numbers):
    assert [t <= 30 for t in numbers["truth"]] == [False, True, False]


@pytest.mark.parametrize(
    "tool, route, arrival, on_time",
    [
        ("A", "highway", "08:55", True),
        ("B", "city", "09:02", False),
        ("C", "highway", "08:55", True),
    ],
)
def test_on_time_utility_picks_and_outcomes(numbers, tool, route, arrival, on_time):
    d = numbers["tools"][tool]["on_time"]
    assert (d["route"], d["arrival"], d["on_time"]) == (route, arrival, on_time)
    assert d["realised_utility"] == float(on_time)
    assert d["oracle_utility"] == 1.0
    assert d["regret"] == 1.0 - float(on_time)


@pytest.mark.parametrize(
    "tool, route, regret", [("A", "highway", 0.0), ("B", "city", 7.0), ("C", "city", 7.0)]
)
def test_fastest_expected_picks(numbers, tool, route, regret):
    d = numbers["tools"][tool]["fastest"]
    assert d["route"] == route
    assert d["regret"] == approx(regret)
    assert d["oracle_utility"] == approx(-25.0)


def test_tool_c_expected_utilities(numbers):
    c = numbers["tools"]["C"]
    assert c["fastest"]["expected_utility"] == approx([-25.0, -27.0, -37.0])
    assert c["on_time"]["expected_utility"] == approx(
        norm.cdf([5 / 8, 3 / 2, -7 / 4]).tolist(), abs=1e-6
    )


def test_three_readings_all_pick_the_highway(numbers):
    r = numbers["tool_c_readings"]
    assert r["1sd"]["p_on_time"] == approx(norm.cdf([5 / 8, 3 / 2, -7 / 4]).tolist(), abs=1e-6)
    assert r["2sd"]["p_on_time"] == approx(norm.cdf([5 / 4, 3.0, -7 / 2]).tolist(), abs=1e-6)
    assert r["uniform"]["p_on_time"] == approx([13 / 16, 1.0, 0.0], abs=1e-6)
    assert r["uniform"]["p_on_time_exact"] == [13 / 16, 1.0, 0.0]
    assert {v["route"] for v in r.values()} == {"highway"}


def test_unknown_reading_raises():
    with pytest.raises(ValueError, match="1sd"):
        route_choice.tool_c("3sd")


def test_main_writes_table_json_csv_and_figure(tmp_path, capsys, numbers):
    route_choice.main(["--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "24.33" in printed and "21.67" in printed and "09:02 LATE" in printed
    assert json.loads((tmp_path / "route_choice.json").read_text()) == json.loads(
        json.dumps(numbers)
    )
    assert len((tmp_path / "tools.csv").read_text().splitlines()) == 1 + 3 * 2
    assert (tmp_path / "tool_c_readings.csv").read_text().count(",highway\n") == 3
    assert (tmp_path / "route_choice.png").stat().st_size > 10_000


def test_example_runs(capsys):
    runpy.run_path(str(ROOT / "examples" / "route_choice.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "highway" in out and "city" in out
