"""Shared fixtures. Tests run on CPU in float32, as users do by default.

XLA programs are cached on disk for the session (``jax_compilation_cache_dir``): many tests
fit the same small model with the same options, and a cache hit skips recompiling it.
"""

import os
import tempfile

import jax
import pytest

_CACHE = os.environ.get("BDL_TEST_JAX_CACHE") or os.path.join(
    tempfile.gettempdir(), "bdl-test-jax-cache"
)
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(0)


@pytest.fixture
def compilations(caplog):
    """``compilations(fn) -> (fn(), messages)``: the XLA compilations ``fn()`` triggers, from
    jax's compile log (compile-once tests assert the list is empty)."""
    import logging

    def run(fn):
        caplog.clear()
        with jax.log_compiles(True), caplog.at_level(logging.WARNING, logger="jax"):
            out = fn()
        return out, [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]

    return run
