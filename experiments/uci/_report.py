"""The UCI report: every record as CSV, means +- standard errors over splits, published
references side by side, a plain statement of where bdl is worse, a figure."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.uci._protocol import REFERENCE_NAMES, REFERENCES

COLUMNS = (("rmse", "RMSE"), ("nll", "NLL"), ("crps", "CRPS"),
           ("calibration_error", "calib. err."), ("coverage_90", "90% cov."),
           ("newsvendor_cost", "newsvendor cost"), ("newsvendor_regret", "regret"),
           ("fit_s", "fit s"))
HEADLINE_METHODS = ("ensemble", "laplace")


def summarise(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(dataset, method): {metric: (mean, standard error), "n": splits, "failed": k}}``."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("kind") == "run":
            groups[(r["dataset"], r["method"])].append(r)
    out = {}
    for key, rows in groups.items():
        ok = [r for r in rows if r.get("status") == "ok"]
        entry: dict[str, Any] = {"n": len(ok), "failed": len(rows) - len(ok),
                                 "splits": sorted(r["split"] for r in ok)}
        for name, _ in COLUMNS:
            values = np.asarray([r[name] for r in ok if _finite(r.get(name))], np.float64)
            entry[name] = _mean_se(values)
        out[key] = entry
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return (math.nan, math.nan)
    se = values.std(ddof=1) / math.sqrt(values.size) if values.size > 1 else math.nan
    return (float(values.mean()), float(se))


def _fmt(pair: tuple[float, float], digits: int = 2) -> str:
    mean, se = pair
    if not math.isfinite(mean):
        return "-"
    return f"{mean:.{digits}f}" + (f" ± {se:.{digits}f}" if math.isfinite(se) else "")


def headline(summary: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """Per data set: our ensemble and Laplace test NLL against the published deep ensembles."""
    rows = []
    for dataset in sorted({d for d, _ in summary}):
        ref = REFERENCES.get(dataset, {}).get("deep_ensembles", {}).get("nll")
        row: dict[str, Any] = {"dataset": dataset, "published_de_nll": ref}
        for method in HEADLINE_METHODS:
            entry = summary.get((dataset, method))
            nll = entry["nll"] if entry else (math.nan, math.nan)
            row[method] = nll
            row[f"{method}_ok"] = (ref is not None and math.isfinite(nll[0])
                                   and nll[0] <= ref[0])
        rows.append(row)
    return rows


def markdown(records: list[dict[str, Any]], *, protocol: str, runtime_s: float,
             machine: str) -> str:
    summary = summarise(records)
    datasets = sorted({d for d, _ in summary})
    methods = sorted({m for _, m in summary}, key=_method_order)
    tunings = [r for r in records if r.get("kind") == "tuning"]
    lines = [
        "# UCI regression on the standard splits: bdl vs the published numbers",
        "",
        f"Protocol `{protocol}`; {len([r for r in records if r.get('kind') == 'run'])} runs; "
        f"report written after {runtime_s:.0f} s on {machine}. Test metrics in the original "
        "units, mean ± standard error over the splits run (the published numbers use all 20). "
        "One-hidden-layer ReLU MLP (50 units); prior precision, noise model (homoscedastic or "
        "heteroscedastic) and epochs chosen per split by validation NLL on 20% of the training "
        "data (never the test data); Laplace re-tunes its prior by the marginal likelihood. "
        "Newsvendor: order a quantity, a unit short costs 3x a unit over (Bayes action: the "
        "0.75-quantile); cost and regret per test point in target units.",
        "",
        "## Headline: test NLL against the published deep ensembles",
        "",
        "| data set | published DE | bdl ensemble | bdl Laplace (GLM) | ensemble <= DE | "
        "Laplace <= DE |",
        "|---|---|---|---|---|---|",
    ]
    rows = headline(summary)
    for row in rows:
        ref = row["published_de_nll"]
        lines.append(f"| {row['dataset']} | {_fmt(ref) if ref else '-'} | "
                     f"{_fmt(row['ensemble'])} | {_fmt(row['laplace'])} | "
                     f"{'yes' if row['ensemble_ok'] else 'NO'} | "
                     f"{'yes' if row['laplace_ok'] else 'NO'} |")
    for method in HEADLINE_METHODS:
        wins = sum(r[f"{method}_ok"] for r in rows)
        lines.append("")
        lines.append(f"- {method}: at least as good as the published deep-ensemble NLL on "
                     f"{wins} of {len(rows)} data sets (goal: 4 of 5).")
    lines += ["", "## Where bdl is worse than the literature", ""]
    lines += _worse(summary, datasets, methods) or ["- nowhere on NLL and RMSE among the "
                                                    "methods run."]
    for dataset in datasets:
        lines += ["", f"## {dataset}", ""]
        tune = [t for t in tunings if t["dataset"] == dataset]
        if tune:
            lines += ["Chosen on validation (MAP grid; ensemble and VI pick their noise model "
                      "by their own validation NLL; Laplace is homoscedastic):", ""]
            for t in sorted(tune, key=lambda t: t["split"]):
                own = "; ".join(f"{m}: {c['noise'][:6]}." for m, c in
                                sorted(t.get("per_method", {}).items()))
                lines.append(f"- split {t['split']}: {t['noise']}, prior precision "
                             f"{t['prior_precision']:g}, {t['epochs']} epochs"
                             + (f" ({own})" if own else "")
                             + f"; tuning took {t.get('tune_s', float('nan')):.0f} s")
            lines.append("")
        lines.append("| method | splits | " + " | ".join(h for _, h in COLUMNS) + " |")
        lines.append("|---|---|" + "---|" * len(COLUMNS))
        for method in methods:
            entry = summary.get((dataset, method))
            if entry is None:
                continue
            failed = f" ({entry['failed']} failed)" if entry["failed"] else ""
            cells = [_fmt(entry[name], 3 if name in ("calibration_error", "coverage_90") else 2)
                     for name, _ in COLUMNS]
            lines.append(f"| {method} | {entry['n']}{failed} | " + " | ".join(cells) + " |")
        for ref_name, ref in REFERENCES.get(dataset, {}).items():
            cells = ["-"] * len(COLUMNS)
            cells[0], cells[1] = _fmt(ref["rmse"]), _fmt(ref["nll"])
            lines.append(f"| *{REFERENCE_NAMES[ref_name]} (published)* | 20 | "
                         + " | ".join(cells) + " |")
    failures = [r for r in records if r.get("kind") == "run" and r.get("status") != "ok"]
    if failures:
        lines += ["", "## Failed runs", ""]
        lines += [f"- `{r['run_id']}`: {str(r.get('error'))[:300]}" for r in failures]
    return "\n".join(lines) + "\n"


def _worse(summary, datasets, methods) -> list[str]:
    out = []
    for dataset in datasets:
        refs = REFERENCES.get(dataset)
        if not refs:
            continue
        best_nll = min(r["nll"][0] for r in refs.values())
        best_rmse = min(r["rmse"][0] for r in refs.values())
        ours = {m: summary[(dataset, m)] for m in methods if (dataset, m) in summary}
        finite = {m: e for m, e in ours.items() if math.isfinite(e["nll"][0])}
        if not finite:
            continue
        m_nll = min(finite, key=lambda m: finite[m]["nll"][0])
        m_rmse = min(finite, key=lambda m: finite[m]["rmse"][0])
        nll, rmse = finite[m_nll]["nll"][0], finite[m_rmse]["rmse"][0]
        parts = []
        if nll > best_nll:
            parts.append(f"best NLL {nll:.2f} ({m_nll}) vs best published {best_nll:.2f}")
        if rmse > best_rmse:
            parts.append(f"best RMSE {rmse:.2f} ({m_rmse}) vs best published {best_rmse:.2f}")
        de = refs.get("deep_ensembles")
        if de:
            for metric, label in (("nll", "NLL"), ("rmse", "RMSE")):
                worse = [m for m, e in finite.items() if e[metric][0] > de[metric][0]]
                if worse:
                    parts.append(f"{label} worse than the published deep ensembles "
                                 f"({de[metric][0]:.2f}): " + ", ".join(
                                     f"{m} {finite[m][metric][0]:.2f}" for m in worse))
        if parts:
            out.append(f"- {dataset}: " + "; ".join(parts) + ".")
    return out


_ORDER = ("map", "ensemble", "laplace", "vi", "sgld", "sghmc", "cyclical_sgld", "hmc", "nuts")


def _method_order(name: str) -> tuple[int, str]:
    return (_ORDER.index(name) if name in _ORDER else len(_ORDER), name)


def write_csv(records: list[dict[str, Any]], path: Path) -> None:
    runs = [r for r in records if r.get("kind") == "run"]
    fields: list[str] = []
    for r in runs:
        fields += [k for k in r if k not in fields and k != "traceback"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in sorted(runs, key=lambda r: (r["dataset"], r["split"], _method_order(r["method"]))):
            w.writerow(r)


def plot(records: list[dict[str, Any]], path: Path) -> None:
    """Test NLL per method and data set (mean ± s.e.), published references as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarise(records)
    datasets = sorted({d for d, _ in summary})
    if not datasets:
        return
    methods = sorted({m for _, m in summary}, key=_method_order)
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.2 * len(datasets), 3.6), squeeze=False)
    styles = {"mc_dropout": ":", "deep_ensembles": "--", "pbp": "-."}
    for ax, dataset in zip(axes[0], datasets, strict=True):
        means = [summary.get((dataset, m), {}).get("nll", (np.nan, np.nan)) for m in methods]
        y = np.arange(len(methods))
        ax.errorbar([m for m, _ in means], y, xerr=[0 if not np.isfinite(s) else s for _, s in means],
                    fmt="o", color="C0", capsize=3)
        for name, ref in REFERENCES.get(dataset, {}).items():
            ax.axvline(ref["nll"][0], color="k", ls=styles[name], lw=1,
                       label=f"{REFERENCE_NAMES[name]} (published)")
        ax.set_yticks(y, methods if ax is axes[0][0] else [""] * len(methods))
        ax.invert_yaxis()
        ax.set_title(dataset)
        ax.set_xlabel("test NLL (nats, original units)")
        ax.grid(axis="x", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8,
               frameon=False)
    fig.suptitle("UCI test NLL: bdl approximators (mean ± s.e. over splits) vs published "
                 "references (lower is better)")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(records: list[dict[str, Any]], out: Path, *, protocol: str, runtime_s: float,
          machine: str) -> dict[str, Path]:
    """Write ``records.csv``, ``report.md`` and ``nll.png`` under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "records.csv", "report": out / "report.md", "figure": out / "nll.png"}
    write_csv(records, paths["csv"])
    paths["report"].write_text(markdown(records, protocol=protocol, runtime_s=runtime_s,
                                        machine=machine))
    plot(records, paths["figure"])
    return paths
