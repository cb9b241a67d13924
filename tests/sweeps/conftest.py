"""Shared fixtures of the sweep tests.

Sweeps spend most of their time compiling (each configuration is a new program), so these
tests share one persistent JAX compilation cache for the session: in this process and in every
subprocess they start (through the environment). It is restored at the end of the session.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache

REPO = Path(__file__).resolve().parents[2]

TINY_TOML = """
name = "tiny"
seeds = 2
[grid]
method = "map"
dataset = "sine"
hidden = [4, 6, 8]
[options]
epochs = 10
learning_rate = 1e-2
"""


@pytest.fixture(scope="session")
def jax_cache(tmp_path_factory) -> Path:
    """A persistent compilation cache for this session (in-process and subprocesses)."""
    path = tmp_path_factory.mktemp("jax_cache")
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    before = {n: getattr(jax.config, n) for n in names}
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    compilation_cache.reset_cache()
    yield path
    for name, value in before.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()


@pytest.fixture
def sub_env(jax_cache) -> dict[str, str]:
    """Environment for sweep subprocesses: the repository importable, the shared cache."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        JAX_COMPILATION_CACHE_DIR=str(jax_cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
        JAX_PLATFORMS="cpu",
        PYTHONUNBUFFERED="1",
    )
    env.pop("XLA_FLAGS", None)
    return env


@pytest.fixture
def tiny_toml(tmp_path) -> Path:
    """3 MAP configurations x 2 seeds on the sine data, 10 epochs."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


def sweep_cli(config: Path, out: Path, *extra: str) -> list[str]:
    """argv of ``python -m experiments.sweep`` in a subprocess."""
    return [sys.executable, "-m", "experiments.sweep", str(config), "--out", str(out),
            "--no-progress", *extra]
