"""The benchmark's figures (matplotlib, Agg backend). Every function writes one PNG."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROUTES = ("city", "highway", "forest")
_STYLES = {"point": ":", "map_homo": "--", "split_conformal": "--", "cqr": "-.", "truth": "-"}


def colours(methods: list[str]) -> dict[str, Any]:
    """One fixed colour per method (``truth`` in black)."""
    palette = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("Dark2").colors)
    out = {m: palette[i % len(palette)]
           for i, m in enumerate(m for m in methods if m != "truth")}
    out["truth"] = "black"
    return out


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _legend(fig, ax, ncol: int = 1) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, ncol=ncol, frameon=False)


def reliability(curves: dict[str, dict[str, Any]], titles: dict[str, str], col: dict,
                path: Path) -> Path:
    """PIT reliability diagrams (observed vs nominal level), one panel per condition."""
    fig, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves) + 1.5, 4.6), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (cond, per_method) in zip(axes, curves.items(), strict=True):
        ax.plot([0, 1], [0, 1], color="grey", lw=1, label="perfect calibration")
        for m, c in per_method.items():
            expected, observed = c["calibration"]
            ax.plot(expected, observed, _STYLES.get(m, "-"), color=col[m], lw=1.5, label=m)
        ax.set_title(titles[cond], fontsize=10)
        ax.set_xlabel("nominal level p")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("observed share of travel times below the p-quantile")
    _legend(fig, axes[-1])
    fig.suptitle("Route choice: calibration of the predictive travel-time distributions (seed 0)")
    return _save(fig, path)


def decision_calibration(curves: dict[str, Any], col: dict, path: Path,
                         min_count: int = 10) -> Path:
    """Predicted P(T <= 30) of the chosen route against how often it arrived on time: one
    small panel per method, marker area proportional to the number of days in the bin."""
    methods = list(curves)
    ncol = 5
    nrow = -(-len(methods) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.9 * ncol, 2.9 * nrow + 0.6), sharex=True,
                             sharey=True, squeeze=False)
    for ax, m in zip(axes.flat, methods, strict=False):
        predicted, realised, counts = curves[m]["decision"]
        keep = counts >= min_count
        ax.plot([0, 1], [0, 1], color="grey", lw=1)
        ax.plot(predicted[keep], realised[keep], "-", color=col[m], lw=1.2)
        ax.scatter(predicted[keep], realised[keep], s=8 + 120 * counts[keep] / counts.sum(),
                   color=col[m], zorder=3)
        gap = np.abs(predicted - realised)
        ece = float(np.nansum(counts * np.nan_to_num(gap)) / max(counts.sum(), 1))
        ax.set_title(f"{m}  (decision ECE {ece:.3f})", fontsize=9)
        ax.set_xlim(-0.04, 1.04)
        ax.set_ylim(-0.04, 1.04)
        ax.set_xticks((0.0, 0.5, 1.0))
        ax.set_yticks((0.0, 0.5, 1.0))
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(methods):]:
        ax.axis("off")
    for j in range(ncol):  # x labels under the lowest panel of every column in use
        used = [i for i in range(nrow) if i * ncol + j < len(methods)]
        if used:
            axes[used[-1], j].set_xlabel("predicted P(T <= 30 min)")
            axes[used[-1], j].xaxis.set_tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel("observed on-time rate")
    fig.suptitle("Decision calibration on shifted test days: the chosen route's predicted "
                 f"P(on time) vs how often it was on time (seed 0; bins with >= {min_count} "
                 "days; marker area ~ days)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return _save(fig, path)


def regret(summaries: dict[str, dict], titles: dict[str, str], col: dict, path: Path) -> Path:
    """Regret per method (mean ± s.e. over seeds), one group of bars per condition."""
    methods = [m for m in summaries["shift"]]
    methods.sort(key=lambda m: summaries["shift"][m]["regret"][0])
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(methods) + 1.6))
    y = np.arange(len(methods))
    width = 0.8 / len(summaries)
    for k, (cond, s) in enumerate(summaries.items()):
        mean = np.array([s[m]["regret"][0] for m in methods])
        se = np.nan_to_num(np.array([s[m]["regret"][1] for m in methods]))
        ax.barh(y + (k - (len(summaries) - 1) / 2) * width, mean, height=width, xerr=se,
                color=f"C{k}", alpha=0.85, label=titles[cond], capsize=2)
    ax.set_yticks(y, methods)
    ax.invert_yaxis()
    ax.set_xlabel("regret = hindsight-oracle on-time rate - realised on-time rate (lower is better)")
    ax.set_title("Route choice: regret of 'take the route with the highest P(T <= 30)'",
                 fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def accuracy_vs_decision(summaries: dict[str, dict], titles: dict[str, str], col: dict,
                         path: Path) -> Path:
    """RMSE against the on-time rate per method, one panel per condition: the lesson in one
    picture. Circles: approximators; squares: baselines; star: the simulator."""
    markers = {"approximator": "o", "baseline": "s", "reference": "*"}
    fig, axes = plt.subplots(1, len(summaries), figsize=(5.6 * len(summaries) + 2.0, 5.0),
                             squeeze=False)
    for ax, (cond, summary) in zip(axes[0], summaries.items(), strict=True):
        for m, e in summary.items():
            x, xe = e["rmse"]
            yv, ye = e["on_time"]
            if math.isnan(x) or math.isnan(yv):
                continue
            ax.errorbar(x, yv, xerr=np.nan_to_num(xe), yerr=np.nan_to_num(ye),
                        fmt=markers.get(e["kind"], "o"), color=col[m], ms=8 if
                        e["kind"] == "reference" else 6, capsize=2, label=m)
        ax.set_xlabel("RMSE of the predicted travel time (min, lower is better)")
        ax.set_title(titles[cond], fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("share of days on time (higher is better)")
    _legend(fig, axes[0, -1])
    fig.suptitle("Route choice: a lower RMSE does not mean more days on time "
                 "(o approximators, \u25a1 baselines, * simulator)", fontsize=11)
    return _save(fig, path)


def coverage(summary: dict, methods: list[str], col: dict, path: Path) -> Path:
    """Per-route coverage of the central 90% intervals: marginal vs per route."""
    methods = [m for m in methods if m in summary]
    groups = ("coverage_90", *(f"coverage_90_{r}" for r in ROUTES))
    labels = ("all routes", *ROUTES)
    fig, ax = plt.subplots(figsize=(9, 4.8))
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(groups))
    ax.axhline(0.9, color="red", ls="--", lw=1.2, label="nominal 90%")
    for k, m in enumerate(methods):
        vals = np.array([summary[m][g][0] for g in groups])
        errs = np.nan_to_num([summary[m][g][1] for g in groups])
        xs = x + (k - (len(methods) - 1) / 2) * width
        # a stem from the nominal level: its length is the miss (dots, not bars, since the
        # axis does not start at 0)
        ax.vlines(xs, 0.9, vals, color=col[m], lw=2.5, alpha=0.6)
        ax.errorbar(xs, vals, yerr=errs, fmt="D" if m == "truth" else "o", ms=6, color=col[m],
                    label=m, capsize=2)
    for edge in x[:-1] + 0.5:
        ax.axvline(edge, color="grey", lw=0.6, alpha=0.5)
    ax.set_xticks(x, labels)
    lo = min(0.8, np.nanmin([summary[m][g][0] for m in methods for g in groups]) - 0.02)
    ax.set_ylim(lo, 1.01)
    ax.set_xlim(-0.5, len(groups) - 0.5)
    ax.set_ylabel("share of travel times inside the central 90% interval")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("Test days like training: 90% intervals cover 90% over all routes pooled, "
                 "not per route\n(mean ± s.e. over seeds; stems: distance from nominal)",
                 fontsize=10)
    _legend(fig, ax)
    return _save(fig, path)


def bands(band: dict[str, Any], methods: list[str], col: dict, path: Path,
          deadline: float = 30.0) -> Path:
    """Predictive 90% bands and medians along departure time on a dry parade day without
    construction; rows = routes, columns = methods; the simulator's band in grey."""
    methods = [m for m in methods if m in band]
    dep = band["departure"]
    truth = band.get("truth")
    fig, axes = plt.subplots(3, len(methods), figsize=(3.3 * len(methods) + 0.5, 8.2),
                             sharex=True, sharey="row", squeeze=False)
    for j, m in enumerate(methods):
        q = band[m]["quantiles"]  # [3 levels, points, routes]
        for i, route in enumerate(ROUTES):
            ax = axes[i, j]
            if truth is not None:
                tq = truth["quantiles"]
                ax.fill_between(dep, tq[0, :, i], tq[2, :, i], color="grey", alpha=0.3,
                                label="simulator 5-95%")
                ax.plot(dep, tq[1, :, i], color="black", lw=1, label="simulator median")
            ax.fill_between(dep, q[0, :, i], q[2, :, i], color=col[m], alpha=0.35,
                            label=f"{m} 5-95%")
            ax.plot(dep, q[1, :, i], color=col[m], lw=1.6, label=f"{m} median")
            ax.axhline(deadline, color="red", ls="--", lw=1, label="30 min")
            if i == 0:
                ax.set_title(m, fontsize=10)
            if j == 0:
                ax.set_ylabel(f"{route}: travel time (min)")
            if i == 2:
                ax.set_xlabel("departure time (hh:mm)")
                ticks = np.arange(np.ceil(dep[0] * 4) / 4, dep[-1] + 1e-9, 0.25)
                ax.set_xticks(ticks, [f"{int(t):02d}:{round(60 * (t % 1)):02d}" for t in ticks],
                              fontsize=8)
            ax.grid(alpha=0.3)
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8,
               frameon=False)
    fig.suptitle("Predictive bands on a dry parade day without construction (seed 0)")
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return _save(fig, path)


def sklearn_reliability(diabetes: dict | None, digits: dict | None, col: dict, path: Path
                        ) -> Path | None:
    """Diabetes PIT reliability and digits top-label reliability diagrams (split 0)."""
    panels = [(n, c) for n, c in (("diabetes", diabetes), ("digits", digits)) if c]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels) + 1.5, 4.8))
    axes = np.atleast_1d(axes)
    for ax, (name, curves) in zip(axes, panels, strict=True):
        ax.plot([0, 1], [0, 1], color="grey", lw=1, label="perfect calibration")
        for m, c in curves.items():
            if name == "diabetes":
                ax.plot(c["expected"], c["observed"], _STYLES.get(m, "-"), color=col[m],
                        lw=1.5, label=m)
            else:
                keep = c["count"] >= 10
                ax.plot(c["confidence"][keep], c["accuracy"][keep], "-o", ms=3, color=col[m],
                        lw=1.3, label=m)
        if name == "diabetes":
            ax.set(xlabel="nominal level p", ylabel="observed share below the p-quantile",
                   title="Diabetes: PIT reliability (split 0)")
        else:
            ax.set(xlabel="confidence (top-class probability, bins >= 10 images)",
                   ylabel="accuracy in the bin", title="Digits: reliability diagram (split 0)")
            ax.set_xlim(0.0, 1.01)
            ax.set_ylim(0.0, 1.01)
        ax.grid(alpha=0.3)
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    axes[-1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8,
                    frameon=False)
    fig.suptitle("Calibration on the scikit-learn data sets (split 0; diagonal = calibrated)",
                 fontsize=11)
    return _save(fig, path)


def evpi_vs_regret(summaries: dict[str, dict], titles: dict[str, str], col: dict,
                   path: Path) -> Path:
    """Route choice: the regret each method expects (EVPI, the expected value of perfect
    information under its own predictive) against the regret it realised, per condition.
    On the diagonal a method knows how much its decisions can still go wrong; below it, it is
    overconfident (a point predictor expects no regret at all). The EVPI of a selection
    depends on the joint over the routes: conformal draws are comonotone across routes
    (marginals only), which makes their EVPI 0."""
    markers = {"approximator": "o", "baseline": "s", "reference": "*"}
    fig, axes = plt.subplots(1, len(summaries), figsize=(5.2 * len(summaries) + 2.0, 4.8),
                             squeeze=False)
    for ax, (cond, summary) in zip(axes[0], summaries.items(), strict=True):
        top = 0.0
        for m, e in summary.items():
            x, xe = e["evpi"]
            yv, ye = e["regret"]
            if math.isnan(x) or math.isnan(yv):
                continue
            top = max(top, x, yv)
            ax.errorbar(x, yv, xerr=np.nan_to_num(xe), yerr=np.nan_to_num(ye),
                        fmt=markers.get(e["kind"], "o"), color=col[m],
                        ms=8 if e["kind"] == "reference" else 6, capsize=2, label=m)
        top = 1.1 * top + 1e-3
        ax.plot([0, top], [0, top], color="grey", lw=1, label="expected = realised")
        ax.set_xlim(-0.02 * top, top)
        ax.set_ylim(-0.02 * top, top)
        ax.set_xlabel("expected regret: mean EVPI under the method's predictive")
        ax.set_title(titles[cond], fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("realised regret (hindsight oracle - on time)")
    _legend(fig, axes[0, -1])
    fig.suptitle("Route choice: the regret a method expects (EVPI) vs the regret it realises",
                 fontsize=11)
    return _save(fig, path)


def sklearn_decisions(diabetes: dict | None, digits: dict | None, col: dict, path: Path,
                      treat_threshold: float | None = None) -> Path | None:
    """Diabetes decision curves (net benefit against the threshold probability, with "treat
    all" and "treat none"; Vickers & Elkin 2006) and digits risk-coverage curves (AURC in the
    legend), split 0."""
    panels = [(n, c) for n, c in (("diabetes", diabetes), ("digits", digits)) if c]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.8 * len(panels) + 1.5, 4.8))
    axes = np.atleast_1d(axes)
    for ax, (name, curves) in zip(axes, panels, strict=True):
        if name == "diabetes":
            first = next(iter(curves.values()))["decision_curve"]
            t = first["thresholds"]
            keep = t <= 0.8
            ax.plot(t[keep], first["treat_all"][keep], color="grey", ls="--", lw=1.2,
                    label="treat all")
            ax.axhline(0.0, color="black", lw=1, label="treat none")
            for m, c in curves.items():
                dc = c["decision_curve"]
                ax.plot(t[keep], dc["net_benefit"][keep], _STYLES.get(m, "-"), color=col[m],
                        lw=1.5, label=m)
            if treat_threshold is not None:
                ax.axvline(treat_threshold, color="red", lw=1, ls=":",
                           label=f"the benchmark's p_t = {treat_threshold:g}")
            top = float(first["prevalence"])
            ax.set_ylim(-0.25 * top, 1.1 * top)
            ax.set(xlabel="threshold probability p_t (treat iff P(progression) >= p_t)",
                   ylabel="net benefit = TP/N - FP/N * p_t / (1 - p_t)",
                   title="Diabetes: decision curves (split 0)")
        else:
            for m, c in curves.items():
                rc = c["risk_coverage"]
                ax.plot(rc["coverage"], rc["risk"], _STYLES.get(m, "-"), color=col[m], lw=1.5,
                        label=f"{m} (AURC {float(rc['aurc']):.4f})")
            ax.set(xlabel="coverage (share of images classified, most confident first)",
                   ylabel="risk (error rate among those classified)",
                   title="Digits: risk-coverage (split 0)")
            ax.set_xlim(0.0, 1.0)
            ax.set_ylim(bottom=0.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left" if name == "digits" else "upper right",
                  frameon=False)
    fig.suptitle("Decisions beyond regret on the scikit-learn data sets", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)
