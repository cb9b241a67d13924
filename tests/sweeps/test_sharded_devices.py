"""On 8 simulated CPU devices the seed-sharded sweep gives the records of the unsharded one."""

from __future__ import annotations

import math
import subprocess
import sys

from bdl import sweeps
from tests.sweeps.conftest import REPO

SCRIPT = """
import sys, jax
from bdl import sweeps
assert len(jax.devices()) == 8, jax.devices()
raw = {"name": "sharded", "seeds": 8,
       "grid": {"method": "ensemble", "dataset": "sine", "hidden": 8},
       "options": {"epochs": 10, "learning_rate": 1e-2, "ensemble": {"num_members": 2}}}
sweeps.run_sweep(raw, sys.argv[1], progress=False)                               # 8 devices
sweeps.run_sweep(raw, sys.argv[2], progress=False, devices=jax.devices()[:1])   # one device
"""
COMPARED = ("rmse", "mse", "nll", "crps", "calibration_error", "coverage_90", "sharpness",
            "expected_utility", "realised_utility", "regret", "decision_ece")


def test_sharded_sweep_matches_unsharded(tmp_path, sub_env):
    env = {**sub_env, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    sharded, single = tmp_path / "sharded", tmp_path / "single"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(sharded), str(single)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    a = {r["run_id"]: r for r in sweeps.collate(sharded)}
    b = {r["run_id"]: r for r in sweeps.collate(single)}
    assert set(a) == set(b) and len(a) == 8
    for rid, ra in a.items():
        rb = b[rid]
        assert ra["status"] == rb["status"] == "ok", (ra.get("error"), rb.get("error"))
        assert (ra["num_devices"], rb["num_devices"]) == (8, 1)
        for key in COMPARED:
            assert math.isclose(ra[key], rb[key], rel_tol=1e-4, abs_tol=1e-5), (key, ra, rb)
