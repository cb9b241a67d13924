"""Sweep files: validation errors name the key; grid expansion, hashing and sharding."""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest

from bdl import sweeps
from experiments import sweep as cli
from tests.sweeps.conftest import REPO

BASE = {"seeds": 2, "grid": {"method": "map", "dataset": "sine"}}


def _with(**sections):
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(name), dict):
            raw[name] = {**raw[name], **value}
        else:
            raw[name] = value
    return raw


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (_with(seedz=3), "seedz"),
        (_with(grid={"methd": "map"}), "grid.methd"),
        (_with(grid={"method": "mapp"}), "grid.method"),
        (_with(grid={"dataset": ["sine", "nope"]}), "grid.dataset[1]"),
        (_with(grid={"hidden": [[8], [0]]}), "grid.hidden[1]"),
        (_with(grid={"activation": "sigmoid"}), "grid.activation"),
        (_with(grid={"utility": "mystery"}), "grid.utility"),
        (_with(grid={"utility": "selective"}), "grid.utility"),  # classification utility, regression data
        (_with(seeds=0), "seeds"),
        (_with(seeds=[1, 1]), "seeds"),
        (_with(options={"prior": 1.0}), "options.prior"),
        (_with(options={"nope": {"epochs": 3}}), "options.nope"),
        (_with(options={"map": {"epochs": [[1, 2]]}}), "options.map.epochs"),
        # validated against the method's options class at load time
        (_with(options={"map": {"num_members": 3}}), "options.map.num_members"),
        (_with(options={"epochz": 3}), "options.epochz"),
        (_with(options={"map": {"epochs": [10, 0]}}), "options.map.epochs"),
        (_with(utilities={"u": {"kind": "threshold", "t": 0.0}}), "utilities.u.kind"),
        (_with(utilities={"u": {"kind": "asymmetric", "undr": 1.0}}), "utilities.u.undr"),
        ({"seeds": 1, "grid": {"dataset": "sine"}}, "grid.method"),
    ],
)
def test_bad_config_names_the_key(raw, key):
    with pytest.raises(sweeps.ConfigError) as info:
        sweeps.load_config(raw)
    assert info.value.key == key
    assert f"`{key}`" in str(info.value)


def test_cli_bad_config_file_exits_2_naming_key_and_file(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('seeds = 2\n[grid]\nmethod = "map"\ndataset = "sine"\nlearning_rate = 0.1\n')
    assert cli.main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "`grid.learning_rate`" in err and str(path) in err
    path.write_text("seeds = [\n")
    assert cli.main([str(path), "--out", str(tmp_path / "out")]) == 2
    assert "invalid TOML" in capsys.readouterr().err


def test_example_config_expands_and_round_trips():
    spec = sweeps.load_config(REPO / "experiments/configs/sweep_small.toml")
    configs = spec.configurations()
    assert len(configs) == 8 and spec.num_runs() == 32
    assert {c["options"].get("num_members") for c in configs} == {None, 5}
    again = sweeps.load_config(spec.to_dict())
    assert [c["config_id"] for c in again.configurations()] == [c["config_id"] for c in configs]


def test_grid_expansion_options_axes_and_hash_stability():
    spec = sweeps.load_config(_with(
        grid={"method": ["map", "ensemble"], "dataset": ["sine", "moons"], "hidden": [8, [4, 4]]},
        options={"epochs": 5, "learning_rate": [1e-3, 1e-2], "ensemble": {"num_members": [2, 3]}},
    ))
    configs = spec.configurations()
    # map: 2 data x 2 hidden x 2 lr = 8; ensemble: x 2 members = 16
    assert len(configs) == 24
    assert len({c["config_id"] for c in configs}) == 24
    moons = [c for c in configs if c["dataset"] == "moons"]
    assert all(c["noise"] is None and c["utility"] == "selective" for c in moons)
    # the id depends on the content only, not on the order of keys or axes
    reordered = sweeps.load_config({"grid": {"hidden": [[4, 4], 8], "dataset": ["moons", "sine"],
                                             "method": ["ensemble", "map"]},
                                    "options": {"ensemble": {"num_members": [3, 2]},
                                                "learning_rate": [1e-2, 1e-3], "epochs": 5},
                                    "seeds": 2})
    assert {c["config_id"] for c in reordered.configurations()} == {c["config_id"] for c in configs}
    # changing a utility's definition changes the id
    other = sweeps.load_config(_with(utilities={"newsvendor": {"kind": "asymmetric", "under": 9.0,
                                                               "actions": [0.0, 1.0]}}))
    assert other.configurations()[0]["config_id"] != sweeps.load_config(BASE).configurations()[0][
        "config_id"]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7, 30])
def test_shards_cover_the_grid_exactly_once(count):
    spec = sweeps.load_config(_with(
        grid={"method": ["map", "ensemble"], "dataset": ["sine", "diabetes", "moons"],
              "hidden": [8, 16, [8, 8]]},
        options={"learning_rate": [1e-3, 3e-3, 1e-2]},
    ))
    configs = spec.configurations()
    shards = [sweeps.shard_configurations(configs, i, count) for i in range(count)]
    ids = [c["config_id"] for shard in shards for c in shard]
    assert sorted(ids) == sorted(c["config_id"] for c in configs)  # each exactly once
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    # independent of the order of the grid
    shuffled = [configs[i] for i in np.random.default_rng(0).permutation(len(configs))]
    for i in range(count):
        assert ({c["config_id"] for c in sweeps.shard_configurations(shuffled, i, count)}
                == {c["config_id"] for c in shards[i]})


def test_parse_shard():
    assert sweeps.parse_shard("2/8") == (2, 8)
    for bad in ("8/8", "1", "-1/2", "a/b", "0/0"):
        with pytest.raises(ValueError, match="shard"):
            sweeps.parse_shard(bad)


def test_run_ids_distinct_and_seed_keys_match_bdl_fit():
    ids = {sweeps.run_id(c, s) for c, s in itertools.product(["a", "b"], range(50))}
    assert len(ids) == 100
    keys = sweeps.seed_keys([0, 3, 17])
    for key, seed in zip(keys, [0, 3, 17], strict=True):
        np.testing.assert_array_equal(jax.random.key_data(key),
                                      jax.random.key_data(jax.random.key(seed)))


def test_seed_mesh_only_when_devices_divide_seeds():
    cpu = jax.devices()[0]
    assert sweeps.seed_mesh(8, [cpu]) is None
    assert sweeps.seed_mesh(3, [cpu, cpu]) is None
    mesh = sweeps.seed_mesh(4, [cpu, cpu])
    assert mesh is not None and mesh.axis_names == (sweeps.SEED_AXIS,) and mesh.size == 2
