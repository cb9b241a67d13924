"""Shared helpers of the benchmarks: the peer problem's data and a results writer."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import jax
import numpy as np

RESULTS = Path(__file__).parent / "results"
# the peer scripts beside the checkout (BDL_PEERS overrides: a copy of the checkout elsewhere)
PEERS = Path(os.environ.get("BDL_PEERS") or Path(__file__).resolve().parents[3] / "shared" / "bench-peers")


def peer_regression_data(seed=0, n_train=2000, n_test=1000, d=8, sigma=0.1):
    """The data recipe of ``shared/bench-peers/laplace_torch_bench.py``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_train, d)).astype(np.float32)
    y = (np.sin(x[:, :1] * 2) + sigma * rng.normal(size=(n_train, 1))).astype(np.float32)
    xt = rng.normal(size=(n_test, d)).astype(np.float32)
    yt = (np.sin(xt[:, :1] * 2) + sigma * rng.normal(size=(n_test, 1))).astype(np.float32)
    return x, y[:, 0], xt, yt[:, 0]


def peer_results() -> list[dict]:
    """The recorded peer lines (one dict per configuration), or [] when absent."""
    files = sorted(PEERS.glob("results-*.jsonl"))
    if not files:
        return []
    return [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]


def write_result(name: str, record: dict) -> Path:
    """Append ``record`` (with machine facts and a timestamp) to ``results/{name}.jsonl``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "machine": platform.machine(),
        **record,
    }
    path = RESULTS / f"{name}.jsonl"
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    return path
