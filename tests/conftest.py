"""Shared fixtures. Tests run on CPU in float32, as users do by default."""

import jax
import pytest


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(0)
