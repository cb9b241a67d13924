"""The Markdown report, its generated interpretation and the printed headline."""

from __future__ import annotations

import math
from typing import Any

from bdl.data import route_choice as rc
from experiments.benchmark import _report as R
from experiments.benchmark import _sklearn as SK
from experiments.benchmark._route import CONDITIONS, FIDELITY_DAYS, TRUTH_DRAWS

ROUTES = ("city", "highway", "forest")
COVERAGE_METHODS = ("split_conformal", "cqr", "map_homo", "map", "ensemble", "hmc", "truth")


def _pct(x: float) -> str:
    return "—" if math.isnan(x) else f"{100 * x:.1f}%"


def _m(summary: dict, method: str, column: str) -> float:
    return summary.get(method, {}).get(column, (math.nan, math.nan))[0]


def route_section(records: R.Records, notes: list[str]) -> tuple[list[str], list[str], dict]:
    """Markdown lines of the route-choice section, interpretation bullets, and the headline
    summary/ranking (shifted test days) for printing."""
    d = f"{rc.DEADLINE:g}"
    md, bullets, heads = [f"## 1. Route choice: arrive within {d} minutes", ""], [], {}
    md += ["Predictive batch shape `[days, routes]`; decision: take the route with the highest "
           f"predicted P(T <= {d} min) (`bdl.decisions.select(bdl.decisions.threshold({d}))`: one "
           "of the routes per day). *on time* = realised "
           "utility (share of days on time), *regret* = hindsight oracle minus on time, "
           "*EVPI* = the regret the predictive itself expects (expected value of perfect "
           "information, `bdl.decisions.evpi`; compare with the realised regret; the conformal "
           "baselines give marginals only, their draws are comonotone across routes, which "
           "makes their EVPI 0), "
           f"*decision ECE* = calibration of the chosen route's predicted P(T <= {d}). "
           "Mean ± s.e. over fit seeds; `truth` is the simulator's own distribution "
           f"({TRUTH_DRAWS:,} draws per day; a reference, not ranked). The NLL of sample-based "
           "predictives (`split_conformal`, `cqr`, `truth`) is a kernel density estimate; a "
           "point predictor's NLL is infinite. *W1 to HMC* = mean Wasserstein-1 distance "
           "(minutes) between a method's predictive marginals and HMC's on the first "
           f"{FIDELITY_DAYS} days (`—` for HMC itself). Bold: best among ranked methods.", ""]
    summaries = {}
    for cond in ("shift", "test"):
        s = R.summarise(R.select(records, "route", cond),
                        R.ROUTE_COLUMNS + tuple(f"coverage_90_{r}" for r in ROUTES)
                        + tuple(f"pick_{r}" for r in ROUTES))
        summaries[cond] = s
        rk = R.ranking(s, "rmse", "on_time")
        md += [f"### {CONDITIONS[cond].capitalize()}", "",
               R.table(s, R.ROUTE_COLUMNS, "on_time"), "",
               "Accuracy rank vs decision rank:", "", R.ranking_table(s, rk, "rmse", "on_time"),
               "", R.ranking_text(rk, "rmse", "on_time"), ""]
        heads[cond] = {"summary": s, "ranking": rk}
    md += ["### Conformal coverage holds on average, not per route", "",
           "Share of travel times inside each method's central 90% interval.", "",
           "| method | all routes (test) | city | highway | forest | all routes (shifted) |",
           "|---|---|---|---|---|---|"]
    st, ss = summaries["test"], summaries["shift"]
    for m in [m for m in COVERAGE_METHODS if m in st]:
        cells = [R.fmt(*st[m]["coverage_90"])] + [R.fmt(*st[m][f"coverage_90_{r}"])
                                                  for r in ROUTES]
        md.append(f"| {m} | " + " | ".join(cells) + f" | {R.fmt(*ss[m]['coverage_90'])} |")
    md += ["", "### Which route each method takes (shifted test days)", "",
           "| method | city | highway | forest | on time |", "|---|---|---|---|---|"]
    for m, e in ss.items():
        md.append(f"| {m} | " + " | ".join(_pct(e[f"pick_{r}"][0]) for r in ROUTES)
                  + f" | {_pct(e['on_time'][0])} |")
    md.append("")
    bullets += _route_bullets(st, ss, heads["shift"]["ranking"], heads["test"]["ranking"])
    return md, bullets, heads


def _route_bullets(st: dict, ss: dict, rk: dict, rk_test: dict) -> list[str]:
    out = []
    ranked = [m for m in rk["methods"]]
    if not ranked:
        return out
    best_acc = min(ranked, key=lambda m: _m(ss, m, "rmse"))
    best_dec = max(ranked, key=lambda m: _m(ss, m, "on_time"))
    text = (f"On the shifted test days the most accurate method by RMSE is **{best_acc}** "
            f"({_m(ss, best_acc, 'rmse'):.2f} min), which arrives on time on "
            f"{_pct(_m(ss, best_acc, 'on_time'))} of days; the best decision-maker is "
            f"**{best_dec}** ({_pct(_m(ss, best_dec, 'on_time'))} on time, RMSE "
            f"{_m(ss, best_dec, 'rmse'):.2f} min).")
    if "truth" in ss:
        text += (f" Acting on the simulator's true distribution arrives on time on "
                 f"{_pct(_m(ss, 'truth', 'on_time'))}: the best rate in expectation (on a "
                 f"finite set of days a forecaster can match or beat it by luck).")
    if not math.isnan(rk["rho"]):
        text += f" Spearman rho(RMSE rank, decision rank) = {rk['rho']:.2f}."
    out.append(text)
    ranked_t = rk_test["methods"]
    if ranked_t:
        acc_t = min(ranked_t, key=lambda m: _m(st, m, "rmse"))
        dec_t = max(ranked_t, key=lambda m: _m(st, m, "on_time"))
        text = (f"On test days like the training ones the lowest RMSE is **{acc_t}**'s "
                f"({_m(st, acc_t, 'rmse'):.2f} min, on time {_pct(_m(st, acc_t, 'on_time'))}); "
                f"the best decisions are **{dec_t}**'s ({_pct(_m(st, dec_t, 'on_time'))}, RMSE "
                f"{_m(st, dec_t, 'rmse'):.2f} min).")
        if not math.isnan(rk_test["rho"]):
            text += f" Spearman rho = {rk_test['rho']:.2f}."
        if rk_test["pairs"]:
            a, b, gap = rk_test["pairs"][0]
            text += (f" Largest disagreement: {a} has the lower RMSE "
                     f"({_m(st, a, 'rmse'):.2f} vs {_m(st, b, 'rmse'):.2f} min) but is on time "
                     f"{100 * gap:.1f} points less often than {b}.")
        out.append(text)
    if {"point", "map_homo", "map"} <= set(ss):
        out.append(
            f"The point predictor (certain: every route predicted under {rc.DEADLINE:g} min gets "
            f"P(T <= {rc.DEADLINE:g}) = 1, ties go to the city) takes the city on "
            f"{_pct(_m(ss, 'point', 'pick_city'))} of the shifted days; `map_homo` (one noise "
            f"scale for every route, so routes are ranked by their mean) on "
            f"{_pct(_m(ss, 'map_homo', 'pick_city'))}; the heteroscedastic `map` on "
            f"{_pct(_m(ss, 'map', 'pick_city'))}. On time: "
            f"{_pct(_m(ss, 'point', 'on_time'))}, {_pct(_m(ss, 'map_homo', 'on_time'))} and "
            f"{_pct(_m(ss, 'map', 'on_time'))}, at RMSE {_m(ss, 'point', 'rmse'):.2f}, "
            f"{_m(ss, 'map_homo', 'rmse'):.2f} and {_m(ss, 'map', 'rmse'):.2f} min.")
    for m in ("split_conformal", "cqr"):
        if m in st:
            per = ", ".join(f"{r} {_pct(_m(st, m, f'coverage_90_{r}'))}" for r in ROUTES)
            out.append(f"`{m}` covers {_pct(_m(st, m, 'coverage_90'))} of travel times over all "
                       f"routes on test days like the training ones (nominal 90%) but {per}: the "
                       f"guarantee is marginal over the pooled days and routes. On the shifted "
                       f"days (no longer exchangeable with the calibration days) it covers "
                       f"{_pct(_m(ss, m, 'coverage_90'))}.")
    drops = [_m(st, m, "on_time") - _m(ss, m, "on_time") for m in ranked
             if m in st and not math.isnan(_m(st, m, "on_time"))]
    if drops:
        regret_t = sum(_m(st, m, "regret") for m in ranked) / len(ranked)
        regret_s = sum(_m(ss, m, "regret") for m in ranked) / len(ranked)
        out.append(f"Under the shift (parades {rc.TRAIN_PARADE_RATE:.0%} -> "
                   f"{rc.SHIFT_PARADE_RATE:.0%} of days) the mean regret over methods "
                   f"rises from {regret_t:.3f} to {regret_s:.3f}; the on-time rate falls by "
                   f"{100 * sum(drops) / len(drops):.1f} points on average.")
    w1 = {m: _m(ss, m, "w1_to_hmc") for m in ss if not math.isnan(_m(ss, m, "w1_to_hmc"))}
    if w1:
        near = sorted(w1, key=w1.get)
        out.append("Agreement with HMC's predictive (mean Wasserstein-1 of the marginals, "
                   "shifted days): closest " + ", ".join(f"{m} ({w1[m]:.2f} min)"
                                                         for m in near[:3])
                   + "; farthest " + ", ".join(f"{m} ({w1[m]:.2f})" for m in near[-2:]) + ".")
    return out


def sklearn_section(task: str, records: R.Records) -> tuple[list[str], list[str]]:
    """Markdown lines and interpretation bullets of the diabetes or digits section."""
    rows = R.select(records, task, "test")
    if not rows:
        return [], []
    if task == "diabetes":
        cols, acc, higher = R.DIABETES_COLUMNS, "rmse", False
        thr = f"{SK.PROGRESSION_THRESHOLD:g}"
        title = f"## 2. Diabetes: treat when progression is likely above {thr}"
        about = (f"Homoscedastic Gaussian MLP; decision per patient: treat now (cost "
                 f"{SK.TREAT_COST:g}) or wait (cost {SK.MISS_COST:g} if progression > {thr}), "
                 f"i.e. treat when P(y > {thr}) > {SK.TREAT_COST / SK.MISS_COST:g}. *utility* = "
                 "minus the mean cost per patient; *treated* = share of patients treated; "
                 f"*net benefit* = decision-curve net benefit (Vickers & Elkin) at threshold "
                 f"probability {SK.TREAT_COST / SK.MISS_COST:g}; *EVPI* = the regret the "
                 "predictive expects; "
                 "*W1 to HMC* = mean Wasserstein-1 distance to HMC's predictive (`—` for HMC "
                 "itself); the point predictor's NLL is infinite. Mean ± s.e. over random "
                 "splits.")
    else:
        cols, acc, higher = R.DIGITS_COLUMNS, "accuracy", True
        title = "## 3. Digits: classify or abstain"
        keep = f"{1 - SK.ABSTAIN_COST:g}"
        about = ("Categorical MLP; decision per image: predict a class (1 if right, 0 if "
                 f"wrong) or abstain ({keep}), i.e. abstain when the top probability is below "
                 f"{keep}. "
                 "*ECE* = top-label expected calibration error (10 bins); *acc. (kept)* = "
                 "accuracy on the images not abstained on; *AURC* = area under the risk-coverage "
                 "curve of the top-class decision (lower is better); *TV to HMC* = "
                 "total-variation "
                 "distance to HMC's class probabilities (only where HMC ran). Mean ± s.e. over "
                 "random splits.")
    s = R.summarise(rows, cols)
    rk = R.ranking(s, acc, "utility", accuracy_higher_better=higher)
    md = [title, "", about, "", R.table(s, cols, "utility"), "",
          "Accuracy rank vs decision rank:", "", R.ranking_table(s, rk, acc, "utility"), "",
          R.ranking_text(rk, acc, "utility"), ""]
    bullets = []
    if rk["methods"]:
        by_acc = sorted(rk["methods"], key=lambda m: -_m(s, m, acc) if higher else _m(s, m, acc))
        best_dec = max(rk["methods"], key=lambda m: _m(s, m, "utility"))
        name = R.COLUMNS[acc][0]
        text = (f"{task}: best {name} **{by_acc[0]}** ({_m(s, by_acc[0], acc):.3f}, utility "
                f"{_m(s, by_acc[0], 'utility'):.3f}); best utility **{best_dec}** "
                f"({_m(s, best_dec, 'utility'):.3f}, {name} {_m(s, best_dec, acc):.3f}).")
        if not math.isnan(rk["rho"]):
            text += f" Spearman rho = {rk['rho']:.2f}."
        bullets.append(text)
    return md, bullets


def headline_text(heads: dict[str, Any]) -> str:
    """The fixed-width tables printed at the end of a run (route choice, both conditions)."""
    return "\n\n".join(_headline(c, heads[c]) for c in ("shift", "test") if c in heads)


def _headline(cond: str, head: dict[str, Any]) -> str:
    s, rk = head["summary"], head["ranking"]
    cols = ("rmse", "nll", "crps", "calibration_error", "decision_ece", "on_time", "regret")
    names = ("RMSE", "NLL", "CRPS", "PIT-ECE", "dec-ECE", "on-time", "regret")
    order = sorted(s, key=lambda m: (s[m]["kind"] == "reference", -_m(s, m, "on_time")))
    lines = [f"Route choice, {CONDITIONS[cond]}: mean over seeds",
             f"{'method':<16}" + "".join(f"{n:>9}" for n in names) + "  rank(RMSE) rank(decision)"]
    ranks = {m: (a, d) for m, a, d in zip(rk["methods"], rk["accuracy_rank"],
                                          rk["decision_rank"], strict=True)}
    for m in order:
        vals = "".join(f"{_m(s, m, c):>9.3f}" for c in cols)
        a, d = ranks.get(m, (math.nan, math.nan))
        extra = f"  {a:>10g} {d:>14g}" if m in ranks else "  (reference)"
        lines.append(f"{m:<16}{vals}{extra}")
    lines.append(R.ranking_text(rk, "rmse", "on_time", max_pairs=3).replace("**", ""))
    return "\n".join(lines)
