"""The UCI experiment: references as published, a seconds-long end-to-end run, resume."""

import re

import pytest

from experiments.uci import _protocol as P
from experiments.uci import main
from experiments.uci._run import default_root

ROOT = default_root()  # $BDL_UCI_ROOT or ../shared/data/uci
needs_data = pytest.mark.skipif(not ROOT.is_dir(), reason=f"no UCI data at {ROOT}")


@needs_data
def test_references_match_the_data_readme():
    text = (ROOT / "README.md").read_text()
    for name, refs in P.REFERENCES.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        numbers = [float(v) for v in re.findall(r"\d+\.\d+", row)]
        ours = [v for key in ("mc_dropout", "deep_ensembles", "pbp")
                for metric in ("rmse", "nll") for v in refs[key][metric]]
        assert numbers == ours, name


@needs_data
def test_tiny_run_writes_report_and_resumes(tmp_path, capsys):
    out = tmp_path / "uci"
    args = ["--tiny", "--datasets", "yacht", "--methods", "map,laplace", "--out", str(out),
            "--root", str(ROOT), "--no-cache"]
    paths = main(args)
    report = paths["report"].read_text()
    assert "| yacht | 1.18 ± 0.21 |" in report
    assert "| laplace | 1 |" in report and "| map | 1 |" in report
    runs = sorted(p.name for p in (out / "runs").glob("*.json"))
    assert runs == ["tune-yacht-00.json", "yacht-00-laplace.json", "yacht-00-map.json"]
    stamp = (out / "runs" / "yacht-00-map.json").stat().st_mtime_ns
    main(args)  # resume: nothing recomputed
    assert (out / "runs" / "yacht-00-map.json").stat().st_mtime_ns == stamp
    assert "resuming: 2 finished runs" in capsys.readouterr().err
    header = paths["csv"].read_text().splitlines()[0]
    for column in ("rmse", "nll", "crps", "coverage_90", "newsvendor_cost", "newsvendor_regret"):
        assert column in header.split(",")


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(SystemExit):
        main(["--tiny", "--methods", "nope", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["--tiny", "--root", str(tmp_path / "missing"), "--out", str(tmp_path)])


@needs_data
def test_shards_split_the_units_between_jobs(tmp_path):
    out = tmp_path / "uci"
    common = ["--tiny", "--datasets", "yacht", "--splits", "0,1", "--methods", "map",
              "--out", str(out), "--root", str(ROOT), "--no-cache"]
    main([*common, "--shard", "0/2"])
    first = {p.name for p in (out / "runs").glob("yacht-*.json")}
    main([*common, "--shard", "1/2"])
    both = {p.name for p in (out / "runs").glob("yacht-*.json")}
    assert len(first) == 1 and both == {"yacht-00-map.json", "yacht-01-map.json"}
