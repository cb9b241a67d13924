"""Predictive tests run with implicit rank promotion turned into an error, so a broadcast that
silently adds axes (a classic shape bug) fails here instead of in a metric."""

import jax
import pytest


@pytest.fixture(autouse=True, scope="module")
def _strict_rank_promotion():
    with jax.numpy_rank_promotion("raise"):
        yield
