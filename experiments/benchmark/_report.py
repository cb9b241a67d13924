"""Tables, rankings and the generated interpretation of the benchmark's records."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from experiments.benchmark._scores import mean_se

Records = list[dict[str, Any]]

# column -> (header, higher is better?) for the tables
COLUMNS: dict[str, tuple[str, bool | None]] = {
    "rmse": ("RMSE", False),
    "nll": ("NLL", False),
    "crps": ("CRPS", False),
    "calibration_error": ("PIT cal. err.", False),
    "coverage_90": ("cov. 90%", None),
    "on_time": ("on time", True),
    "utility": ("utility", True),
    "regret": ("regret", False),
    "decision_ece": ("decision ECE", False),
    "evpi": ("EVPI", None),
    "net_benefit": ("net benefit", True),
    "aurc": ("AURC", False),
    "accuracy": ("accuracy", True),
    "ece": ("ECE", False),
    "brier": ("Brier", False),
    "treat_rate": ("treated", None),
    "abstain_rate": ("abstained", None),
    "accuracy_kept": ("acc. (kept)", True),
    "w1_to_hmc": ("W1 to HMC", False),
    "tv_to_hmc": ("TV to HMC", False),
    "fit_s": ("fit s", None),
}
ROUTE_COLUMNS = ("rmse", "nll", "crps", "calibration_error", "coverage_90", "on_time", "regret",
                 "evpi", "decision_ece", "w1_to_hmc", "fit_s")
DIABETES_COLUMNS = ("rmse", "nll", "crps", "calibration_error", "coverage_90", "utility",
                    "regret", "evpi", "net_benefit", "decision_ece", "treat_rate", "w1_to_hmc",
                    "fit_s")
DIGITS_COLUMNS = ("accuracy", "nll", "ece", "brier", "utility", "regret", "evpi", "aurc",
                  "decision_ece", "abstain_rate", "accuracy_kept", "tv_to_hmc", "fit_s")


def write_csv(records: Records, path: Path) -> None:
    """Every record as one CSV row (the union of all keys as columns; blank where absent)."""
    keys: list[str] = []
    for r in records:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(records)


def select(records: Records, task: str, condition: str) -> Records:
    return [r for r in records if r["task"] == task and r["condition"] == condition]


def summarise(records: Records, columns: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per method (in first-seen order): ``kind`` and ``(mean, se)`` of each column over seeds."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        out.setdefault(r["method"], {"kind": r["kind"], "rows": []})["rows"].append(r)
    for entry in out.values():
        rows = entry.pop("rows")
        entry["n"] = len(rows)
        for c in columns:
            values = [r[c] for r in rows if c in r and r[c] is not None]
            entry[c] = mean_se(values) if values else (math.nan, math.nan)
    return out


def fmt(mean: float, se: float, digits: int = 3) -> str:
    """``mean ± se`` (just the mean when the s.e. is undefined; ``—`` for a missing value)."""
    if math.isnan(mean):
        return "—"
    if math.isinf(mean):
        return "inf"
    return f"{mean:.{digits}f}" if math.isnan(se) else f"{mean:.{digits}f} ± {se:.{digits}f}"


def table(summary: dict[str, dict[str, Any]], columns: Sequence[str], sort_by: str,
          higher_better: bool = True) -> str:
    """A Markdown table of ``summary``: ranked methods sorted by ``sort_by``, references last;
    the best value of each column among ranked methods in bold."""
    columns = [c for c in columns
               if any(not math.isnan(e[c][0]) for e in summary.values())]
    ranked = [m for m, e in summary.items() if e["kind"] != "reference"]
    ranked.sort(key=lambda m: _key(summary[m][sort_by][0], higher_better))
    order = ranked + [m for m, e in summary.items() if e["kind"] == "reference"]
    best = {}
    for c in columns:
        better = COLUMNS[c][1]
        values = [summary[m][c][0] for m in ranked if not math.isnan(summary[m][c][0])]
        if better is not None and values:
            best[c] = max(values) if better else min(values)
    head = "| method | kind | " + " | ".join(COLUMNS[c][0] for c in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 2)]
    for m in order:
        e = summary[m]
        cells = []
        for c in columns:
            text = f"{e[c][0]:.1f}" if c == "fit_s" else fmt(*e[c])
            cells.append(f"**{text}**" if best.get(c) == e[c][0] and e["kind"] != "reference"
                         else text)
        lines.append(f"| {m} | {e['kind']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _key(value: float, higher_better: bool) -> float:
    if math.isnan(value):
        return math.inf
    return -value if higher_better else value


def ranking(summary: dict[str, dict[str, Any]], accuracy: str, decision: str,
            accuracy_higher_better: bool = False) -> dict[str, Any]:
    """Ranks of the ranked (non-reference) methods by ``accuracy`` and by ``decision``
    (higher is better), their Spearman correlation and the discordant pairs.

    Returns a dict: ``methods``, ``accuracy_rank``, ``decision_rank`` (1 = best, ties
    averaged), ``rho`` and ``p`` (Spearman; NaN for fewer than 3 methods) and ``pairs``: tuples
    ``(a, b, gap)`` where ``a`` is more accurate than ``b`` but decides worse by ``gap`` (more
    than their combined standard error), largest gaps first.
    """
    methods = [m for m, e in summary.items() if e["kind"] != "reference"
               and not math.isnan(summary[m][accuracy][0])
               and not math.isnan(summary[m][decision][0])]
    acc = np.array([summary[m][accuracy][0] for m in methods])
    dec = np.array([summary[m][decision][0] for m in methods])
    acc_rank = stats.rankdata(-acc if accuracy_higher_better else acc)
    dec_rank = stats.rankdata(-dec)
    rho, p = (math.nan, math.nan)
    if len(methods) >= 3 and np.ptp(acc_rank) > 0 and np.ptp(dec_rank) > 0:
        res = stats.spearmanr(acc_rank, dec_rank)
        rho, p = float(res.statistic), float(res.pvalue)
    pairs = []
    for i, a in enumerate(methods):
        for j, b in enumerate(methods):
            if acc_rank[i] < acc_rank[j] and dec[i] < dec[j]:
                se = math.hypot(*(np.nan_to_num(summary[m][decision][1]) for m in (a, b)))
                if dec[j] - dec[i] > se:
                    pairs.append((a, b, float(dec[j] - dec[i])))
    pairs.sort(key=lambda t: -t[2])
    se_known = any(not math.isnan(summary[m][decision][1]) for m in methods)
    return {"methods": methods, "accuracy_rank": acc_rank, "decision_rank": dec_rank,
            "rho": rho, "p": p, "pairs": pairs, "se_known": se_known}


def ranking_table(summary, rk: dict[str, Any], accuracy: str, decision: str) -> str:
    """Markdown: each method's accuracy and decision rank, sorted by decision rank."""
    a_name, d_name = COLUMNS[accuracy][0], COLUMNS[decision][0]
    lines = [f"| method | {a_name} | rank by {a_name} | {d_name} | rank by {d_name} | shift |",
             "|---|---|---|---|---|---|"]
    order = np.argsort(rk["decision_rank"], kind="stable")
    for i in order:
        m = rk["methods"][i]
        ar, dr = rk["accuracy_rank"][i], rk["decision_rank"][i]
        lines.append(f"| {m} | {fmt(*summary[m][accuracy])} | {ar:g} | "
                     f"{fmt(*summary[m][decision])} | {dr:g} | {ar - dr:+g} |")
    return "\n".join(lines)


def ranking_text(rk: dict[str, Any], accuracy: str, decision: str, max_pairs: int = 5) -> str:
    """One paragraph: Spearman's rho and the largest disagreements."""
    a_name, d_name = COLUMNS[accuracy][0], COLUMNS[decision][0]
    n = len(rk["methods"])
    if math.isnan(rk["rho"]):
        why = ("fewer than 3 methods" if n < 3 else
               f"all {n} methods tie on {a_name}" if np.ptp(rk["accuracy_rank"]) == 0 else
               f"all {n} methods tie on {d_name}")
        text = f"Spearman rank correlation: undefined ({why})."
    else:
        verdict = ("the rankings agree" if rk["rho"] >= 0.7 else
                   "the rankings only loosely agree" if rk["rho"] >= 0.3 else
                   "the rankings disagree")
        text = (f"Spearman rank correlation between the {a_name} ranking and the {d_name} "
                f"ranking: **rho = {rk['rho']:.2f}** (p = {rk['p']:.2g}, {n} methods): {verdict}.")
    if rk["pairs"]:
        shown = "; ".join(f"{a} beats {b} on {a_name} but loses on {d_name} by {gap:.3f}"
                          for a, b, gap in rk["pairs"][:max_pairs])
        noise = ("gap > combined s.e." if rk.get("se_known", True) else
                 "any gap: one seed/split gives no s.e.")
        text += (f" {len(rk['pairs'])} pair(s) are ordered one way by {a_name} and the other way "
                 f"by {d_name} ({noise}), e.g.: {shown}.")
    else:
        text += f" No pair is ordered one way by {a_name} and the other by {d_name} beyond noise."
    return text
