"""The decision-aware benchmark: bdl's main job.

Every registered approximator (``bdl.available()``), a point predictor and conformal
baselines are fitted on

1. **route choice** (``bdl.data.route_choice``): travel times of three routes, a shifted test
   condition; decision: select the route most likely to arrive within 30 minutes, one per
   day (``bdl.decisions.select``);
2. **diabetes** (scikit-learn): per patient, treat when progression is likely above a
   threshold (an action utility);
3. **digits** (scikit-learn): per image, classify or abstain (``bdl.decisions.selective``);

and scored on accuracy (RMSE, NLL, CRPS, calibration, coverage / accuracy, ECE) *and* on the
decisions they lead to (realised utility, regret, decision ECE, EVPI against realised regret,
diabetes decision curves, digits risk-coverage curves and AURC), with the ranking by each and
their rank correlation, per-route conformal coverage and agreement with HMC.

Run::

    python -m experiments.benchmark [--full] [--methods map,ensemble] [--seeds N]
                                    [--splits N] [--tasks route,diabetes,digits]
                                    [--out results/benchmark]

Writes into ``--out``: ``records.csv`` (one row per task, condition, method and seed),
``report.md`` (tables, rankings, generated interpretation) and the figures ``*.png``.
Compiled programs are cached on disk (``$BDL_JAX_CACHE``, default ``~/.cache/bdl/jax``), so a
second run skips most compilation; ``--no-cache`` turns that off.
"""

from experiments.benchmark._cli import main

__all__ = ["main"]
