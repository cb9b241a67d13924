"""SIGKILL in the middle of a sweep, then --resume: complete, exactly once, nothing redone."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from bdl import sweeps
from experiments import sweep as cli
from tests.sweeps.conftest import REPO, sweep_cli


def _snapshot(runs_dir):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in runs_dir.glob("*.json") if not p.name.startswith(".tmp-")}


def test_sigkill_then_resume_completes_exactly_once(tmp_path, tiny_toml, sub_env):
    out = tmp_path / "out"
    runs = out / "runs"
    proc = subprocess.Popen(sweep_cli(tiny_toml, out), cwd=REPO, env=sub_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while not (runs.is_dir() and _snapshot(runs)):
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no record appeared in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    before = _snapshot(runs)
    spec = sweeps.load_config(tiny_toml)
    assert 0 < len(before) < spec.num_runs(), "the kill must land in the middle of the sweep"
    for _, _, payload in before.values():
        assert json.loads(payload)["status"] == "ok"  # whole records only

    # without --resume the store is protected (exit status 2, nothing overwritten)
    assert cli.main([str(tiny_toml), "--out", str(out), "--no-progress"]) == 2
    assert _snapshot(runs) == before

    done = subprocess.run(sweep_cli(tiny_toml, out, "--resume"), cwd=REPO, env=sub_env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(before)} already done, {spec.num_runs() - len(before)} ran" in done.stdout

    records = sweeps.collate(out)  # parses every record: none is corrupt
    expected = {(c["config_id"], s) for c in spec.configurations() for s in spec.seeds}
    got = [(r["config_id"], r["seed"]) for r in records]
    assert len(got) == len(set(got)) == len(expected) and set(got) == expected
    assert all(r["status"] == "ok" for r in records)
    after = _snapshot(runs)
    assert {k: after[k] for k in before} == before  # finished runs were not recomputed
