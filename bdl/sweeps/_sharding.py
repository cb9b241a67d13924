"""Spreading a sweep: grid shards across jobs/hosts, the seed axis across local devices.

- ``shard_configurations(configs, i, n)``: job ``i`` of ``n`` takes every n-th configuration
  in the order of their hashes, so the ``n`` shards cover the grid exactly once whatever the
  order of the file, and stay balanced (sizes differ by at most one).
- ``seed_mesh(num_seeds)``: a one-axis ``Mesh`` over this process's devices for the seed axis
  of ``fit_seeds`` when there are several devices and they divide the seeds.
- ``init_distributed()``: ``jax.distributed.initialize()`` when ``JAX_COORDINATOR_ADDRESS``
  is set (multi-controller); process ``i`` of ``n`` then runs shard ``i/n``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

__all__ = ["SEED_AXIS", "init_distributed", "parse_shard", "seed_mesh", "shard_configurations"]

SEED_AXIS = "seeds"


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"`--shard` must look like i/n (e.g. 0/4); got {text!r}.")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"`--shard` {text!r}: need n >= 1 and 0 <= i < n.")
    return index, count


def shard_configurations(configs: Sequence[dict[str, Any]], index: int, count: int
                         ) -> list[dict[str, Any]]:
    """The configurations of shard ``index`` of ``count`` (in their original order)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need count >= 1 and 0 <= index < count.")
    by_hash = sorted(c["config_id"] for c in configs)
    mine = set(by_hash[index::count])
    return [c for c in configs if c["config_id"] in mine]


def seed_mesh(num_seeds: int, devices: Sequence[Any] | None = None) -> Mesh | None:
    """A ``Mesh`` with one axis ``"seeds"`` over ``devices`` (default: this process's local
    devices), or ``None`` when there is one device or they do not divide ``num_seeds``."""
    devices = list(jax.local_devices() if devices is None else devices)
    if len(devices) < 2 or num_seeds % len(devices):
        return None
    return Mesh(np.array(devices), (SEED_AXIS,))


def init_distributed() -> tuple[int, int]:
    """Join a multi-controller JAX job when ``JAX_COORDINATOR_ADDRESS`` is set (with
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, or a cluster JAX detects); returns this
    process's ``(index, count)``, ``(0, 1)`` for a single process."""
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        kwargs = {}
        if "JAX_NUM_PROCESSES" in os.environ:
            kwargs["num_processes"] = int(os.environ["JAX_NUM_PROCESSES"])
        if "JAX_PROCESS_ID" in os.environ:
            kwargs["process_id"] = int(os.environ["JAX_PROCESS_ID"])
        jax.distributed.initialize(os.environ["JAX_COORDINATOR_ADDRESS"], **kwargs)
    return jax.process_index(), jax.process_count()
