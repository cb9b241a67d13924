"""Route choice made real: every method on the travel-time simulator (``bdl.data.route_choice``).

One network predicts the travel times of all three routes of a day (outputs ``[days, 3]``), so
every predictive has batch shape ``[days, routes]`` and the decision "take the route with the
highest P(T <= 30)" is ``bdl.decisions.choose(pred, select(threshold(30)))``: one route per day,
the routes being the last batch axis. Each method's EVPI (the regret it expects) is scored next
to the regret it realised.
Approximators use a heteroscedastic Gaussian likelihood; the baselines are

- ``map_homo``: MAP with a homoscedastic Gaussian (one noise scale for every route and day:
  trained, in effect, on squared error);
- ``point``: its mean as a ``Point`` predictive (certain: P(T <= 30) is 0 or 1);
- ``split_conformal``: ``bdl.conformal.split_conformal`` around ``map_homo``'s mean,
  calibrated on ``n_train / 4`` further days from the training distribution (residuals
  pooled over days and routes). Being simulated, calibration days cost nothing here; with
  real data they would be held out of the training set. So conformal rows differ from
  their base rows only by the calibration;
- ``cqr``: ``bdl.conformal.conformalised_quantiles`` on the heteroscedastic ``map``'s
  quantiles, same calibration days;
- ``truth`` (reference, not ranked): the simulator's own conditional distribution.

Targets are standardised with one mean and one scale for all routes (so a homoscedastic
model really has one noise scale in minutes), and predictives are mapped back to minutes
before scoring.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import bdl
from bdl import conformal, decisions, metrics
from bdl.data import route_choice as rc
from bdl.predictive import Predictive
from experiments.benchmark import _methods as M
from experiments.benchmark._scores import wasserstein1

TASK = "route"
CONDITIONS = {"test": f"test days (as in training: parades {rc.TRAIN_PARADE_RATE:.0%})",
              "shift": f"shifted test days (parades {rc.SHIFT_PARADE_RATE:.0%})"}
BASELINES = ("map_homo", "point", "split_conformal", "cqr")
REFERENCE = "truth"
TRUTH_DRAWS = 1000
FIDELITY_DAYS = 300
SLICE_POINTS = 61
SLICE_LEVELS = (0.05, 0.5, 0.95)
EVPI_DRAWS = 1000  # joint draws per day for the EVPI of mixtures (exact for samples, points)


@dataclasses.dataclass(frozen=True)
class RouteSize:
    """Sizes of the route-choice protocol."""

    n_train: int = 1000
    n_test: int = 1000
    hidden: tuple[int, ...] = (50,)


SIZES = {"default": RouteSize(), "full": RouteSize(3000, 5000, (50, 50)),
         "tiny": RouteSize(120, 60, (8,))}


@dataclasses.dataclass
class RouteResult:
    """Everything the report needs from the route-choice task.

    Attributes:
      records: one dict per (condition, method, seed): metrics, decision scores, timings.
      curves: per condition and method (seed 0): ``calibration`` (expected, observed),
        ``decision`` (predicted, realised, counts) for the figures.
      bands: per method (seed 0): quantiles ``[3 levels, points, 3 routes]`` and mean
        ``[points, 3]`` on the 1-D slice; ``"truth"`` too; ``"departure"`` the slice's x axis.
      notes: what was skipped and why.
    """

    records: list[dict[str, Any]]
    curves: dict[str, dict[str, dict[str, np.ndarray]]]
    bands: dict[str, Any]
    notes: list[str]


def slice_covariates() -> rc.Covariates:
    """The 1-D slice of the band figure: departure 07:30-09:00 on a dry parade day without
    construction (where the city's mean and its risk disagree most)."""
    dep = np.linspace(7.5, 9.0, SLICE_POINTS)
    zero = np.zeros_like(dep)
    return {"departure": dep, "rain": zero, "construction": zero, "parade": np.ones_like(dep)}


def score(pred: Predictive, days: rc.RouteDays, u: decisions.Utility) -> dict[str, float]:
    """Accuracy, calibration, per-route coverage and decision scores of ``pred`` (minutes,
    batch ``[days, 3]``) against the travel times that happened."""
    y = jnp.asarray(days.y)
    out: dict[str, float] = dict(metrics.evaluate(pred, y))
    per_route = np.asarray(metrics.coverage(pred, y, 0.9)).mean(axis=0)
    out.update({f"coverage_90_{r}": float(c) for r, c in zip(rc.ROUTES, per_route, strict=True)})
    d = decisions.evaluate(pred, y, u)
    out.update(on_time=d["realised_utility"], p_on_time=d["expected_utility"],
               regret=d["regret"], decision_ece=d["decision_ece"], optimal_rate=d["optimal_rate"])
    evpi = decisions.evpi(pred, u, key=jax.random.key(0), num_samples=EVPI_DRAWS)
    out["evpi"] = float(jnp.mean(evpi))
    picks = np.asarray(decisions.choose(pred, u))
    out.update({f"pick_{r}": float(np.mean(picks == i)) for i, r in enumerate(rc.ROUTES)})
    return out


def _curves(pred: Predictive, days: rc.RouteDays, u: decisions.Utility) -> dict:
    y = jnp.asarray(days.y)
    cal = metrics.calibration_curve(pred, y)
    dec = decisions.decision_calibration_curve(pred, y, u, num_bins=10)
    return {"calibration": (np.asarray(cal.expected), np.asarray(cal.observed)),
            "decision": (np.asarray(dec.predicted), np.asarray(dec.realised),
                         np.asarray(dec.counts))}


def _band(pred: Predictive) -> dict[str, np.ndarray]:
    levels = jnp.asarray(SLICE_LEVELS).reshape(-1, 1, 1)
    return {"quantiles": np.asarray(pred.quantile(levels)), "mean": np.asarray(pred.mean())}


def run(methods: list[str], num_seeds: int, *, protocol: str = "default", seed: int = 0,
        progress: Any = None) -> RouteResult:
    """Fit every method (and the baselines) on one simulated data set with ``num_seeds``
    seeds each, and score them on the test and shifted-test days.

    Args:
      methods: registered approximators to run (heteroscedastic likelihood).
      num_seeds: fit seeds per method (fitted together with ``fit_seeds`` where possible).
      protocol: ``"default"``, ``"full"`` or ``"tiny"``: data sizes (``SIZES``) and method
        presets (``_methods.method_options``).
      seed: data seed (the simulator) and base of the fit keys.
      progress: a ``tqdm`` bar (``update(1)`` per method, ``set_postfix_str``) or ``None``.
    """
    sz = SIZES[protocol]
    data = rc.splits(seed, sz.n_train, sz.n_test)
    train = data["train"]
    calib = rc.simulate(np.random.default_rng([seed, 1]),
                        sz.n_train // 4, parade_rate=rc.TRAIN_PARADE_RATE)
    shift_, scale = float(train.y.mean()), float(train.y.std())
    y_std = (train.y - shift_) / scale
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    pred_keys = jax.random.split(jax.random.key(seed + 1), num_seeds)
    u = decisions.select(decisions.threshold(rc.DEADLINE))  # one of the routes per day
    hetero = bdl.likelihoods.Gaussian("heteroscedastic")
    homo = bdl.likelihoods.Gaussian("homoscedastic")
    model_het = bdl.models.MLP(hidden=sz.hidden, out=6)
    model_hom = bdl.models.MLP(hidden=sz.hidden, out=3)
    days = {c: data[c] for c in CONDITIONS}
    x_slice = rc.features(slice_covariates())
    notes: list[str] = []
    preds: dict[str, list[dict[str, Predictive]]] = {}
    posteriors: dict[str, list[Any]] = {}
    fit_s: dict[str, float] = {}
    bands: dict[str, Any] = {"departure": slice_covariates()["departure"]}

    def tick(name: str) -> None:
        if progress is not None:
            progress.set_postfix_str(f"route: {name}")

    def add(name: str, posts: list, seconds: float) -> None:
        posteriors[name] = posts
        preds[name] = []
        for s, post in enumerate(posts):
            k = pred_keys[s]
            preds[name].append({c: M.predict(post, d.x, k).affine(shift_, scale)
                                for c, d in days.items()})
            if s == 0:
                bands[name] = _band(M.predict(post, x_slice, k).affine(shift_, scale))
        fit_s[name] = seconds

    for method in methods:
        tick(method)
        if not M.runs_sampler(method, protocol, model_het, train.x):
            notes.append(f"route: skipped {method} (network too large for the default run)")
        else:
            add(method, *M.fit_seeds(method, model_het, hetero, (train.x, y_std), keys, protocol))
        if progress is not None:
            progress.update(1)

    tick("baselines")
    posts, seconds = M.fit_seeds("map", model_hom, homo, (train.x, y_std), keys, protocol)
    add("map_homo", posts, seconds)
    preds["point"] = [{c: Predictive.point(p.mean()) for c, p in per.items()}
                      for per in preds["map_homo"]]
    bands["point"] = {"quantiles": np.repeat(bands["map_homo"]["mean"][None], 3, axis=0),
                      "mean": bands["map_homo"]["mean"]}
    fit_s["point"] = seconds
    if "map" not in posteriors:  # cqr's base
        posts, seconds = M.fit_seeds("map", model_het, hetero, (train.x, y_std), keys, protocol)
        posteriors["map"], fit_s["map"] = posts, seconds
    y_cal = jnp.asarray(calib.y)
    for name, base_name, fn in (("split_conformal", "map_homo", conformal.split_conformal),
                                ("cqr", "map", conformal.conformalised_quantiles)):
        preds[name] = []
        for s, post in enumerate(posteriors[base_name]):
            k = pred_keys[s]
            base = lambda x, post=post, k=k: M.predict(post, x, k).affine(shift_, scale)
            cal_pred = base(calib.x)
            preds[name].append({c: fn(cal_pred, y_cal, base(d.x)) for c, d in days.items()})
            if s == 0:
                bands[name] = _band(fn(cal_pred, y_cal, base(x_slice)))
        fit_s[name] = fit_s[base_name]
    truth_draws = {c: rc.travel_times(seed + 7, d.covariates, TRUTH_DRAWS) for c, d in days.items()}
    preds[REFERENCE] = [{c: Predictive.from_samples(v) for c, v in truth_draws.items()}]
    bands[REFERENCE] = _band(Predictive.from_samples(
        rc.travel_times(seed + 8, slice_covariates(), 2000)))
    fit_s[REFERENCE] = 0.0
    if progress is not None:
        progress.update(1)

    records, curves = _score_all(preds, days, u, fit_s, methods, tick)
    tick("agreement with HMC")
    _fidelity(preds, records)
    return RouteResult(records, curves, bands, notes)


def _kind(name: str, methods: list[str]) -> str:
    if name == REFERENCE:
        return "reference"
    return "approximator" if name in methods else "baseline"


def _score_all(preds, days, u, fit_s, methods, tick):
    records, curves = [], {c: {} for c in CONDITIONS}
    for name, per_seed in preds.items():
        tick(f"scoring {name}")
        for s, per_condition in enumerate(per_seed):
            for c, pred in per_condition.items():
                start = time.perf_counter()
                rec = {"task": TASK, "condition": c, "method": name,
                       "kind": _kind(name, methods), "seed": s, "fit_s": fit_s[name]}
                rec.update(score(pred, days[c], u))
                rec["score_s"] = time.perf_counter() - start
                records.append(rec)
                if s == 0:
                    curves[c][name] = _curves(pred, days[c], u)
    return records, curves


def _fidelity(preds, records) -> None:
    """Add ``w1_to_hmc`` (minutes, mean over the first ``FIDELITY_DAYS`` days and the routes)
    to every record of a seed that HMC also ran."""
    if "hmc" not in preds:
        return
    index = {(r["method"], r["seed"], r["condition"]): r for r in records}
    for s, ref in enumerate(preds["hmc"]):
        for c, ref_pred in ref.items():
            days = jnp.arange(min(FIDELITY_DAYS, ref_pred.batch_shape[0]))
            ref_pred = ref_pred.take(days)
            for name, per_seed in preds.items():
                if name != "hmc" and s < len(per_seed):
                    w1 = wasserstein1(per_seed[s][c].take(days), ref_pred)
                    index[(name, s, c)]["w1_to_hmc"] = w1
