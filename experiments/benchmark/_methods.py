"""Which approximators the benchmark runs, with what options, and how they are fitted.

``PRESETS`` is the one table of per-method options: a new method is one line
(``"name": (default options, --full overrides)``). A registered method without a preset runs
with its own defaults (``_FALLBACK``).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import bdl
from bdl.predictive import Predictive

_TRAIN = {"epochs": 1000, "learning_rate": 3e-3}
_TRAIN_FULL = {"epochs": 3000}
# the presets' step sizes were tuned for chains started at random initialisations (the
# library's SG-MCMC default is now a MAP start, where these steps can diverge)
_SG = {"num_chains": 2, "batch_size": 128, "init": "random"}

# method -> (default options, overrides under --full)
PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "map": (_TRAIN, _TRAIN_FULL),
    "ensemble": ({**_TRAIN, "num_members": 5}, {**_TRAIN_FULL, "num_members": 10}),
    "laplace": ({**_TRAIN, "tune_steps": 200}, _TRAIN_FULL),
    "vi": (_TRAIN, {**_TRAIN_FULL, "num_mc_samples": 4}),
    "sgld": ({**_SG, "num_samples": 25, "num_burnin": 1000, "thinning": 20,
              "sgd_learning_rate": 0.05},
             {"num_chains": 4, "num_samples": 100, "num_burnin": 5000}),
    # blackjax's SGHMC integrator is explicit Euler (the gradient at the old position), which
    # adds energy at every step; with blackjax's friction (0.01: momentum decay ~3e-5 per step
    # here) nothing removes it and the draws come out overdispersed (90% intervals covered
    # 96-100%). bdl's default is now friction * step = 0.2; this preset's 100 gives ~0.3-0.5.
    "sghmc": ({**_SG, "num_samples": 25, "num_burnin": 200, "thinning": 4, "friction": 100.0},
              {"num_chains": 4, "num_samples": 100, "num_burnin": 1000}),
    # the library's default peak step (an SGD learning rate of 0.01) underfits in 400 noiseless
    # steps per cycle (digits: 88% abstained); a rate of 0.1 with half of each cycle sampling
    # (not 20%, whose near-zero steps give MAP-like, overfitted draws on diabetes).
    "cyclical_sgld": ({**_SG, "num_cycles": 4, "steps_per_cycle": 500, "num_samples": 20,
                       "sgd_learning_rate": 0.1, "exploration_fraction": 0.5},
                      {"num_chains": 4, "steps_per_cycle": 2000, "num_samples": 40}),
    "hmc": ({"num_chains": 2, "num_warmup": 150, "num_samples": 25, "thinning": 4,
             "num_integration_steps": 12},
            {"num_chains": 4, "num_warmup": 1000, "num_samples": 100, "thinning": 5,
             "num_integration_steps": 24}),
    "nuts": ({"num_chains": 2, "num_warmup": 150, "num_samples": 25, "thinning": 4,
              "max_num_doublings": 4},
             {"num_chains": 4, "num_warmup": 1000, "num_samples": 100, "thinning": 5,
              "max_num_doublings": 8}),
}
# per task: options that change wherever a preset sets them (diabetes: 354 patients overfit
# a full-batch MAP-type fit long before 1,000 epochs; 150 is near the validation optimum)
TASK_OVERRIDES: dict[str, dict[str, Any]] = {"diabetes": {"epochs": 150}}
# the smoke test's protocol: these options shrink wherever a preset sets them
_TINY = {"epochs": 20, "num_members": 2, "num_samples": 4, "num_burnin": 10, "num_warmup": 20,
         "num_cycles": 2, "steps_per_cycle": 40, "thinning": 1, "num_integration_steps": 4,
         "tune_steps": 10}
_FALLBACK: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
# full-batch samplers: run by default only on models with at most this many parameters
SAMPLERS = ("hmc", "nuts")
DEFAULT_MAX_SAMPLER_PARAMS = 2000
# parameter draws of predictives that sample (VI, heteroscedastic Laplace): the presets keep
# every predictive at <= 100 mixture components, since the mixture CRPS costs O(components^2)
PREDICT_SAMPLES = 50


PROTOCOLS = ("default", "full", "tiny")


def method_options(method: str, protocol: str = "default", task: str | None = None
                   ) -> dict[str, Any]:
    """The options the benchmark passes to ``bdl.fit(method, ...)`` under ``protocol``
    (``"default"``, ``"full"`` or ``"tiny"``) on ``task``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; choose one of {PROTOCOLS}.")
    default, overrides = PRESETS.get(method, _FALLBACK)
    options = {**default, **(overrides if protocol == "full" else {})}
    task_overrides = TASK_OVERRIDES.get(task or "", {})
    options.update({k: v for k, v in task_overrides.items() if k in options})
    if protocol == "tiny":
        options.update({k: v for k, v in _TINY.items() if k in options})
    return options


def resolve_options(options: dict[str, Any], num_data: int) -> dict[str, Any]:
    """The options ``bdl.fit`` takes: a preset's ``sgd_learning_rate`` (the benchmark's own
    option, so that one value suits data sets of every size) becomes the SG-MCMC
    ``step_size = sgd_learning_rate / num_data``."""
    options = dict(options)
    if "sgd_learning_rate" in options:
        options["step_size"] = float(options.pop("sgd_learning_rate")) / num_data
    return options


def select_methods(requested: Sequence[str] | None) -> list[str]:
    """The registered methods to run: ``requested`` (checked) or all of ``bdl.available()``."""
    available = bdl.available()
    if not requested:
        return list(available)
    unknown = sorted(set(requested) - set(available))
    if unknown:
        raise ValueError(f"Unknown method(s) {unknown}; available: {', '.join(available)}.")
    return list(requested)


def fit_seeds(method: str, model: Any, likelihood: Any, data: tuple, keys: jax.Array,
              protocol: str, task: str | None = None) -> tuple[list[Any], float]:
    """``bdl.approximators.fit_seeds`` with the preset options; returns the S posteriors and
    the wall-clock seconds per seed (seeds of map/ensemble train together, so it is their
    share of one program)."""
    start = time.perf_counter()
    options = resolve_options(method_options(method, protocol, task), len(data[0]))
    posteriors = bdl.approximators.fit_seeds(method, model, likelihood, data, keys=keys,
                                             **options)
    jax.block_until_ready(jax.tree.leaves(getattr(posteriors[-1], "particles", {})))
    return posteriors, (time.perf_counter() - start) / len(posteriors)


def runs_sampler(method: str, protocol: str, model: Any, x: np.ndarray) -> bool:
    """Whether ``method`` runs: full-batch samplers only on small networks, except ``--full``."""
    if method not in SAMPLERS or protocol == "full":
        return True
    return num_params(model, x) <= DEFAULT_MAX_SAMPLER_PARAMS


def num_params(model: Any, x: np.ndarray) -> int:
    """Number of network parameters of ``model`` on inputs like ``x`` ``[N, D]``."""
    network = bdl.models.as_network(model, jnp.asarray(x[:1]))
    shapes = jax.eval_shape(network.init, jax.random.key(0))
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(shapes)))


def predict(posterior: Any, x: np.ndarray, key: jax.Array) -> Predictive:
    """``posterior.predict(x, key=key)``, with ``PREDICT_SAMPLES`` draws where it samples."""
    options = {}
    if "num_samples" in inspect.signature(posterior.predict).parameters:
        options["num_samples"] = PREDICT_SAMPLES
    return posterior.predict(jnp.asarray(x), key=key, **options)
