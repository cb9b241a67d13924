"""The conformance cases: tiny problems, the fast options per method, and the case design.

A case is (method, model kind, dtype, likelihood). Methods come from ``bdl.available()`` at
collection time, so a method registered later gets every check without touching this file;
the only per-method knowledge is ``FAST_OPTIONS`` below (run-time options, never a change of
what is checked).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen, nnx

import bdl

N_TRAIN, N_TEST, N_FEATURES, HIDDEN, NUM_CLASSES = 24, 10, 2, 6, 3

# Small-problem options, per method: just enough steps / draws / members for the code paths to
# run end to end on 24 points in well under a second of compute. They buy speed only; whether
# a method gives a GOOD posterior is for its own tests. A method missing from this table (one
# registered later) runs with its defaults (`{}`): slower, but it gets every check; add a row
# to keep the suite fast. Warnings about short runs (NotConvergedWarning, DiagnosticsWarning)
# are expected with these settings and ignored by the suite.
FAST_OPTIONS: dict[str, dict[str, Any]] = {
    "map": dict(epochs=5),
    "ensemble": dict(epochs=5, num_members=2),
    "laplace": dict(epochs=5, tune_steps=5),
    "vi": dict(epochs=5, num_mc_samples=2),
    "sgld": dict(num_chains=2, num_burnin=5, num_samples=4, thinning=1),
    "sghmc": dict(num_chains=2, num_burnin=5, num_samples=4, thinning=1,
                  num_integration_steps=2),
    "cyclical_sgld": dict(num_chains=2, num_cycles=2, steps_per_cycle=6, num_samples=4,
                          thinning=1),
    "hmc": dict(num_chains=2, num_warmup=10, num_samples=4, num_integration_steps=4),
    "nuts": dict(num_chains=2, num_warmup=10, num_samples=4, max_num_doublings=3),
}


def fast_options(method: str) -> dict[str, Any]:
    return dict(FAST_OPTIONS.get(method, {}))


METHODS = bdl.available()
MODELS = ("mlp", "nnx", "linen")
DTYPES = ("float32", "float64")
LIKELIHOODS = ("homoscedastic", "heteroscedastic", "categorical")


class Case(NamedTuple):
    method: str
    model: str
    dtype: str
    likelihood: str

    @property
    def id(self) -> str:
        return "-".join(self)

    @property
    def classification(self) -> bool:
        return self.likelihood == "categorical"

    @property
    def out(self) -> int:
        return {"homoscedastic": 1, "heteroscedastic": 2, "categorical": NUM_CLASSES}[
            self.likelihood]

    @property
    def x64(self) -> bool:
        return self.dtype == "float64"

    def precision(self) -> contextlib.AbstractContextManager:
        """The float64 cases run inside ``jax.enable_x64(True)`` (a context: the global
        config of the other tests is never flipped); every JAX call of a case, the
        predictive's methods included, must run inside it."""
        return jax.enable_x64(self.x64)


def covering_design(methods=METHODS) -> list[Case]:
    """Three cases per method, a Latin square: method ``m``'s row ``r`` takes model ``r``,
    likelihood ``(r + m) % 3`` and dtype ``(r + m) % 2``. So every method runs with each model
    kind, each likelihood and both dtypes; across methods every (model, likelihood), (model,
    dtype) pair is covered (from 3 methods on), and every (dtype, likelihood) pair from 4 on."""
    cases = []
    for m, method in enumerate(methods):
        for r, model in enumerate(MODELS):
            s = r + m
            cases.append(Case(method, model, DTYPES[s % 2], LIKELIHOODS[s % 3]))
    return cases


def full_product(methods=METHODS) -> list[Case]:
    return [Case(*c) for c in itertools.product(methods, MODELS, DTYPES, LIKELIHOODS)]


# --------------------------------------------------------------------------- data


def data(case: Case):
    """``(x [N, 2], y, x_test, y_test)`` in the case's dtype; ``y`` is ``[N]`` float (regression)
    or ``[N]`` int labels of 3 classes (each present)."""
    rng = np.random.default_rng(0)
    dtype = np.float64 if case.x64 else np.float32
    x = rng.normal(size=(N_TRAIN + N_TEST, N_FEATURES))
    if case.classification:
        y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.3).astype(np.int32)
        y[:NUM_CLASSES] = np.arange(NUM_CLASSES)  # every class in the training set
    else:
        y = np.sin(x[:, 0]) - 0.5 * x[:, 1] + 0.1 * (1 + np.abs(x[:, 0])) * rng.normal(size=len(x))
        y = y.astype(dtype)
    x = x.astype(dtype)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def likelihood(case: Case):
    if case.classification:
        return bdl.likelihoods.Categorical()
    return bdl.likelihoods.Gaussian(noise=case.likelihood)


# --------------------------------------------------------------------------- models


class _NNXNet(nnx.Module):
    def __init__(self, out: int, param_dtype, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(N_FEATURES, HIDDEN, param_dtype=param_dtype, rngs=rngs)
        self.head = nnx.Linear(HIDDEN, out, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x):
        return self.head(jnp.tanh(self.hidden(x)))


class _LinenNet(linen.Module):
    out: int
    param_dtype: Any = jnp.float32

    @linen.compact
    def __call__(self, x):
        x = jnp.tanh(linen.Dense(HIDDEN, param_dtype=self.param_dtype)(x))
        return linen.Dense(self.out, param_dtype=self.param_dtype)(x)


def model(case: Case):
    """The case's model: ``bdl.models.MLP`` (float32 parameters, as it has no dtype option),
    an NNX factory ``rngs -> Module`` or a Linen module, the last two with parameters in the
    case's dtype. One hidden layer of 6 tanh units."""
    param_dtype = jnp.float64 if case.x64 else jnp.float32
    if case.model == "mlp":
        return bdl.models.MLP(hidden=(HIDDEN,), out=case.out, activation="tanh")
    if case.model == "nnx":
        out = case.out
        return lambda rngs: _NNXNet(out, param_dtype, rngs=rngs)
    if case.model == "linen":
        return _LinenNet(out=case.out, param_dtype=param_dtype)
    raise ValueError(case.model)


# --------------------------------------------------------------------------- posterior arrays


def posterior_arrays(post) -> list[jax.Array]:
    """Every floating array a posterior holds (its parameters, factors, draws), found through
    its dataclass fields with ``jax.tree.leaves``; ``info`` (diagnostics such as an R-hat that
    is legitimately NaN) and private caches are left out."""
    fields = ([f.name for f in dataclasses.fields(post)] if dataclasses.is_dataclass(post)
              else list(vars(post)))
    leaves = []
    for name in fields:
        if name == "info" or name.startswith("_"):
            continue
        for leaf in jax.tree.leaves(getattr(post, name)):
            if isinstance(leaf, (jax.Array, np.ndarray)) and jnp.issubdtype(leaf.dtype,
                                                                            jnp.inexact):
                leaves.append(leaf)
    return leaves
