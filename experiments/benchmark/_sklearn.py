"""Real data shipped with scikit-learn: diabetes (a treatment decision) and digits (selective
classification), several random splits, mean +- standard error over them.

- diabetes: homoscedastic Gaussian MLP on standardised inputs and targets (predictives are
  scored in the original units). Decision per patient: treat now (cost ``TREAT_COST``) or
  wait (cost ``MISS_COST`` if the disease progresses above ``PROGRESSION_THRESHOLD``): treat
  exactly when P(progression > threshold) > TREAT_COST / MISS_COST. ``point`` is the MAP
  mean as a ``Point`` (treats when its prediction exceeds the threshold). Also scored: the
  decision curve (net benefit against the threshold probability, ``bdl.decisions.
  decision_curve`` of the event ``threshold(PROGRESSION_THRESHOLD, below=False)``) and EVPI.
- digits: categorical MLP. Decision per image: predict a class (utility 1 if right, 0 if
  wrong) or abstain (utility 1 - ``ABSTAIN_COST``): ``bdl.decisions.selective``. Also scored:
  the risk-coverage curve of the top-class decision and its area (AURC), and EVPI.

Both decisions are per example (action utilities): one action for every test point.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import bdl
from bdl import decisions, metrics
from bdl.data import sklearn_sets
from bdl.predictive import Predictive
from experiments.benchmark import _methods as M
from experiments.benchmark._scores import total_variation, wasserstein1

PROGRESSION_THRESHOLD = 200.0  # disease progression score (dataset units)
TREAT_COST, MISS_COST = 1.0, 5.0
ABSTAIN_COST = 0.1
NUM_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class SklearnSize:
    """Sizes of the scikit-learn protocol."""

    num_splits: int = 3
    hidden: tuple[int, ...] = (50,)
    max_test: int | None = None


SIZES = {"default": SklearnSize(), "full": SklearnSize(10, (50, 50)),
         "tiny": SklearnSize(2, (8,), 60)}


@dataclasses.dataclass
class SklearnResult:
    """Records (one per method and split), figure data (split 0) and notes."""

    records: list[dict[str, Any]]
    curves: dict[str, dict[str, Any]]
    notes: list[str]


def treat_utility(threshold: float = PROGRESSION_THRESHOLD, treat_cost: float = TREAT_COST,
                  miss_cost: float = MISS_COST) -> decisions.Utility:
    """Action utility over ``[wait, treat]``: ``u(wait, y) = -miss_cost * 1[y > threshold]``,
    ``u(treat, y) = -treat_cost``; expected utility in closed form from the predictive CDF
    (``[*batch, 2]``)."""

    def fn(a, y):
        return jnp.where(a == 1, -treat_cost, -miss_cost * (y > threshold).astype(jnp.float32))

    def expected(pred):
        if pred.is_classification:
            return None
        p_high = 1.0 - pred.cdf(threshold)
        return jnp.stack([-miss_cost * p_high, jnp.full_like(p_high, -treat_cost)], axis=-1)

    return decisions.custom(fn, jnp.arange(2), expected=expected, bounds=(-miss_cost, 0.0),
                            name=f"treat if P(y > {threshold:g}) > {treat_cost / miss_cost:g}",
                            task="regression")


def progression() -> decisions.Utility:
    """The event of the diabetes decision curve: ``1[y > PROGRESSION_THRESHOLD]``."""
    return decisions.threshold(PROGRESSION_THRESHOLD, below=False)


def run(task: str, methods: list[str], *, protocol: str = "default",
        num_splits: int | None = None, seed: int = 0, progress: Any = None) -> SklearnResult:
    """Fit every method on every split of ``task`` (``"diabetes"`` or ``"digits"``).

    ``protocol`` (``"default"``, ``"full"``, ``"tiny"``) sets the sizes (``SIZES``) and the
    method presets; ``num_splits`` overrides its number of random splits."""
    sz = SIZES[protocol]
    if num_splits is not None:
        sz = dataclasses.replace(sz, num_splits=int(num_splits))
    regression = task == "diabetes"
    if regression:
        splits = sklearn_sets.diabetes(seed, sz.num_splits)
        lik, out, u = bdl.likelihoods.Gaussian("homoscedastic"), 1, treat_utility()
    else:
        splits = sklearn_sets.digits(seed, sz.num_splits)
        lik, out = bdl.likelihoods.Categorical(), NUM_CLASSES
        u = decisions.selective(NUM_CLASSES, ABSTAIN_COST)
    model = bdl.models.MLP(hidden=sz.hidden, out=out)
    notes: list[str] = []
    preds: dict[str, list[Predictive]] = {}
    fit_s: dict[str, float] = {}
    for method in methods:
        if progress is not None:
            progress.set_postfix_str(f"{task}: {method}")
        if not M.runs_sampler(method, protocol, model, splits[0].x_train):
            notes.append(f"{task}: skipped {method} (network too large for the default run)")
        else:
            preds[method], seconds = [], 0.0
            for i, sp in enumerate(splits):
                key = jax.random.key(seed + 1000 * i)
                (post,), sec = M.fit_seeds(method, model, lik, (sp.x_train, sp.y_train),
                                           key[None], protocol, task)
                seconds += sec
                x_test = sp.x_test[: sz.max_test]
                pred = M.predict(post, x_test, jax.random.fold_in(key, 1))
                preds[method].append(pred.affine(sp.y_mean, sp.y_std) if regression else pred)
            fit_s[method] = seconds / len(splits)
        if progress is not None:
            progress.update(1)
    if regression and "map" in preds:
        preds["point"] = [Predictive.point(p.mean()) for p in preds["map"]]
        fit_s["point"] = fit_s["map"]

    records, curves = [], {}
    for name, per_split in preds.items():
        for i, pred in enumerate(per_split):
            sp = splits[i]
            y = sp.y_test[: sz.max_test]
            y = y * sp.y_std + sp.y_mean if regression else y
            rec = {"task": task, "condition": "test", "method": name,
                   "kind": "approximator" if name in methods else "baseline", "seed": i,
                   "fit_s": fit_s[name]}
            rec.update(_score(pred, jnp.asarray(y), u, regression))
            if "hmc" in preds and name != "hmc":
                ref = preds["hmc"][i]
                rec["w1_to_hmc" if regression else "tv_to_hmc"] = (
                    wasserstein1(pred, ref) if regression else total_variation(pred, ref))
            records.append(rec)
            if i == 0:
                curves[name] = _curve(pred, jnp.asarray(y), regression)
    return SklearnResult(records, curves, notes)


def _score(pred: Predictive, y: jax.Array, u: decisions.Utility, regression: bool
           ) -> dict[str, float]:
    out: dict[str, float] = dict(metrics.evaluate(pred, y))
    d = decisions.evaluate(pred, y, u)
    out.update(utility=d["realised_utility"], regret=d["regret"],
               decision_ece=d["decision_ece"], optimal_rate=d["optimal_rate"])
    action = np.asarray(decisions.choose(pred, u))
    out["evpi"] = float(jnp.mean(decisions.evpi(pred, u, key=jax.random.key(0))))
    if regression:
        out["treat_rate"] = float(np.mean(action == 1))
        out["net_benefit"] = float(decisions.decision_curve(
            pred, y, progression(), jnp.array([TREAT_COST / MISS_COST])).net_benefit[0])
    else:
        kept = action < NUM_CLASSES
        out["abstain_rate"] = float(1.0 - kept.mean())
        hits = action == np.asarray(y)
        out["accuracy_kept"] = float(hits[kept].mean()) if kept.any() else float("nan")
        out["aurc"] = float(decisions.risk_coverage_curve(pred, y, _classify()).aurc)
    return out


def _classify() -> decisions.Utility:
    """Predict a class, no abstaining (1 if right): the risk-coverage curve decides who is kept."""
    return decisions.table(jnp.eye(NUM_CLASSES), name="classify")


def _curve(pred: Predictive, y: jax.Array, regression: bool) -> dict[str, Any]:
    if regression:
        c = metrics.calibration_curve(pred, y)
        dc = decisions.decision_curve(pred, y, progression())
        return {"expected": np.asarray(c.expected), "observed": np.asarray(c.observed),
                "decision_curve": {k: np.asarray(v) for k, v in dc._asdict().items()}}
    r = metrics.reliability_diagram(pred, y, n_bins=10)
    rc = decisions.risk_coverage_curve(pred, y, _classify())
    out = {name: np.asarray(v) for name, v in r._asdict().items()}
    out["risk_coverage"] = {k: np.asarray(v) for k, v in rc._asdict().items()}
    return out
