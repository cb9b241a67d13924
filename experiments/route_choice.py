"""The route-choice example: a lower MSE does not mean better decisions.

It is 08:30; you must be at work by 09:00, i.e. the drive must take at most 30 minutes.
Tools A and B are point predictors of the travel time on three routes (city, highway,
forest); Tool C predicts "25 ± 8, 27 ± 2, 37 ± 4". The truth is 32, 25, 35 minutes.
(Numbers: docs/route-choice.md, from the commentary on Papamarkou et al., ICML 2024.)

Tool C's "±" is not defined in the source, so it is read three ways:

- ``1sd``: a Gaussian with the half-width as standard deviation;
- ``2sd``: a Gaussian with the half-width as two standard deviations (a ~95% interval);
- ``uniform``: a uniform distribution over the range (city 17-33 min), represented by a
  ``Predictive.from_samples`` of a fine midpoint grid whose empirical CDF at 30 min is exact
  (13/16 for the city), and checked against the closed form ``(30 - low) / (high - low)``.

Run: ``python -m experiments.route_choice --out results/route_choice``. Writes
``route_choice.json`` (every number), ``tools.csv``, ``tool_c_readings.csv`` and
``route_choice.png`` (Tool C's densities with the 30-minute line and the point predictions).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np

import bdl
from bdl import decisions, metrics

ROUTES = ("city", "highway", "forest")
TRUTH = (32.0, 25.0, 35.0)
TOOL_A = (35.0, 25.0, 43.0)
TOOL_B = (28.0, 32.0, 35.0)
TOOL_C_CENTRE = (25.0, 27.0, 37.0)
TOOL_C_HALF_WIDTH = (8.0, 2.0, 4.0)
DEADLINE = 30.0  # minutes: leave 08:30, arrive by 09:00
DEPARTURE = 8 * 60 + 30  # minutes after midnight
UNIFORM_GRID = 16_000  # a multiple of 16: the city's P(T <= 30) = 13/16 is hit exactly

READINGS = {
    "1sd": "Gaussian, ± = 1 sd",
    "2sd": "Gaussian, ± = 2 sd (95% interval)",
    "uniform": "uniform over the range",
}
_DECISION_COLUMNS = ("route", "arrival", "on_time", "realised_utility", "oracle_utility", "regret")
UTILITIES = {
    "on_time": "u = 1[T <= 30]  (arrive by 09:00)",
    "fastest": "u = -T  (fastest expected)",
}


def tool_c(reading: str = "1sd") -> bdl.Predictive:
    """Tool C's predictive over the three routes (batch shape ``[3]``) under ``reading``."""
    centre, half = jnp.asarray(TOOL_C_CENTRE), jnp.asarray(TOOL_C_HALF_WIDTH)
    if reading == "1sd":
        return bdl.Predictive.gaussian(centre, half)
    if reading == "2sd":
        return bdl.Predictive.gaussian(centre, half / 2.0)
    if reading == "uniform":
        midpoints = (jnp.arange(UNIFORM_GRID) + 0.5) / UNIFORM_GRID  # [N]
        return bdl.Predictive.from_samples(centre - half + 2.0 * half * midpoints[:, None])
    raise ValueError(f"Unknown reading {reading!r}; choose one of: {', '.join(READINGS)}.")


def uniform_on_time_exact() -> list[float]:
    """P(T <= 30) per route for the uniform reading, in closed form."""
    low = np.subtract(TOOL_C_CENTRE, TOOL_C_HALF_WIDTH)
    high = np.add(TOOL_C_CENTRE, TOOL_C_HALF_WIDTH)
    return np.clip((DEADLINE - low) / (high - low), 0.0, 1.0).tolist()


def clock(minutes: float) -> str:
    """Minutes after midnight as ``HH:MM``."""
    m = int(round(minutes))
    return f"{m // 60:02d}:{m % 60:02d}"


def route_choice_numbers() -> dict:
    """Every number of the example, as plain Python values (JSON-ready).

    Returns a dict with ``routes``, ``truth``, ``tools`` (per tool: predictions, MSE, CRPS and,
    per utility, the expected utility of each route, the chosen route, the realised travel
    time and arrival, realised utility, oracle and regret) and ``tool_c_readings`` (per reading
    of "±": P(T <= 30) per route and the chosen route).
    """
    truth = jnp.asarray(TRUTH)
    # one choice among the routes: the alternatives are the predictive's (only) batch axis
    utilities = {"on_time": decisions.select(decisions.threshold(DEADLINE)),
                 "fastest": decisions.select(decisions.linear(-1.0))}
    tools = {
        "A": bdl.Predictive.point(jnp.asarray(TOOL_A)),
        "B": bdl.Predictive.point(jnp.asarray(TOOL_B)),
        "C": tool_c("1sd"),
    }
    out_tools = {}
    for name, pred in tools.items():
        accuracy = metrics.evaluate(pred, truth)
        entry = {
            "prediction": [float(v) for v in pred.mean()],
            "mse": accuracy["mse"],
            "crps": accuracy["crps"],
        }
        for u_name, u in utilities.items():
            eu = decisions.expected_utility(pred, u)
            choice = int(decisions.choose(pred, u))
            scores = decisions.evaluate(pred, truth, u)
            travel = TRUTH[choice]
            entry[u_name] = {
                "expected_utility": [float(v) for v in eu],
                "route": ROUTES[choice],
                "travel_time": travel,
                "arrival": clock(DEPARTURE + travel),
                "on_time": travel <= DEADLINE,
                "realised_utility": scores["realised_utility"],
                "oracle_utility": scores["oracle_utility"],
                "regret": scores["regret"],
            }
        out_tools[name] = entry
    if "C" in out_tools:
        out_tools["C"]["prediction_sd"] = list(TOOL_C_HALF_WIDTH)

    readings = {}
    for reading, label in READINGS.items():
        pred = tool_c(reading)
        p = decisions.expected_utility(pred, utilities["on_time"])
        readings[reading] = {
            "label": label,
            "p_on_time": [float(v) for v in p],
            "route": ROUTES[int(decisions.choose(pred, utilities["on_time"]))],
        }
    readings["uniform"]["p_on_time_exact"] = uniform_on_time_exact()

    return {
        "routes": list(ROUTES),
        "truth": list(TRUTH),
        "deadline": DEADLINE,
        "departure": clock(DEPARTURE),
        "utilities": dict(UTILITIES),
        "tools": out_tools,
        "tool_c_readings": readings,
    }


def format_table(numbers: dict) -> str:
    """The printed summary of :func:`route_choice_numbers`."""
    routes, tools = numbers["routes"], numbers["tools"]
    lines = [
        f"Route choice: leave {numbers['departure']}, arrive by 09:00 (travel time <= "
        f"{numbers['deadline']:g} min)",
        "truth (min): "
        + ", ".join(f"{r} {t:g}" for r, t in zip(routes, numbers["truth"], strict=True)),
        "",
        f"{'tool':<5} {'prediction':<20} {'MSE':>6}   "
        f"{'pick: fastest expected':<36} {'pick: P(T<=30)'}",
    ]
    for name, t in tools.items():
        pred = ", ".join(f"{m:g}" for m in t["prediction"])
        if "prediction_sd" in t:
            pairs = zip(t["prediction"], t["prediction_sd"], strict=True)
            pred = ", ".join(f"{m:g}±{s:g}" for m, s in pairs)
        picks = []
        for u_name in ("fastest", "on_time"):
            d = t[u_name]
            late = "on time" if d["on_time"] else "LATE"
            picks.append(f"{d['route']} -> {d['arrival']} {late}, regret {d['regret']:g}")
        lines.append(f"{name:<5} {pred:<20} {t['mse']:>6.2f}   {picks[0]:<36} {picks[1]}")
    lines += [
        "(regret: minutes lost for 'fastest expected'; 1 = late for 'P(T<=30)')",
        "",
        "Tool C: P(T <= 30 min) per route under three readings of '±'",
        f"{'reading':<36}" + "".join(f"{r:>9}" for r in routes) + "   pick",
    ]
    for r in numbers["tool_c_readings"].values():
        probs = "".join(f"{p:>9.4f}" for p in r["p_on_time"])
        lines.append(f"{r['label']:<36}{probs}   {r['route']}")
    return "\n".join(lines)


def plot(numbers: dict, path: Path) -> None:
    """Tool C's predictive densities per route, the deadline and the point predictions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    routes, tools = numbers["routes"], numbers["tools"]
    t = np.linspace(5.0, 55.0, 1001)
    fig, axes = plt.subplots(len(routes), 1, figsize=(8, 8), sharex=True)
    styles = {"1sd": "-", "2sd": "--", "uniform": ":"}
    for k, (ax, route) in enumerate(zip(axes, routes, strict=True)):
        centre, half = TOOL_C_CENTRE[k], TOOL_C_HALF_WIDTH[k]
        densities = {
            "1sd": _normal_pdf(t, centre, half),
            "2sd": _normal_pdf(t, centre, half / 2.0),
            "uniform": np.where(np.abs(t - centre) <= half, 0.5 / half, 0.0),
        }
        for reading, density in densities.items():
            ax.plot(t, density, styles[reading], color="C0", label=f"Tool C, {READINGS[reading]}")
        ax.fill_between(t, densities["1sd"], where=t <= numbers["deadline"], color="C0", alpha=0.15)
        ax.axvline(numbers["deadline"], color="red", lw=1.5, label="09:00 (30 min)")
        top = 1.15 * max(float(d.max()) for d in densities.values())
        for name, color in (("A", "C2"), ("B", "C1")):
            x = tools[name]["prediction"][k]
            ax.plot([x], [top], "v", color=color, ms=10, label=f"Tool {name} (point)")
            ax.annotate(name, (x, top), textcoords="offset points", xytext=(0, 7), ha="center")
        ax.plot([numbers["truth"][k]], [0.0], "k*", ms=13, clip_on=False, label="truth")
        ax.set_ylim(0.0, 1.3 * top)
        p = [numbers["tool_c_readings"][r]["p_on_time"][k] for r in READINGS]
        ax.set_title(
            f"{route}: P(T <= 30) = {p[0]:.3f} (1 sd), {p[1]:.3f} (2 sd), {p[2]:.3f} (uniform)",
            fontsize=10,
        )
        ax.set_ylabel("density")
    axes[-1].set_xlabel("travel time (min)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle("Route choice: Tool C's predictive travel time; shaded = P(on time), 1-sd reading")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(numbers: dict, out: Path) -> list[Path]:
    """JSON, CSV and the figure into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "route_choice.json", out / "tools.csv", out / "tool_c_readings.csv"]
    paths[0].write_text(json.dumps(numbers, indent=2) + "\n")
    with paths[1].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["tool", "mse", "crps", "utility", *_DECISION_COLUMNS])
        for name, t in numbers["tools"].items():
            for u_name in UTILITIES:
                d = t[u_name]
                w.writerow([name, t["mse"], t["crps"], u_name, *(d[c] for c in _DECISION_COLUMNS)])
    with paths[2].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["reading", *(f"p_on_time_{r}" for r in numbers["routes"]), "route"])
        for reading, r in numbers["tool_c_readings"].items():
            w.writerow([reading, *r["p_on_time"], r["route"]])
    paths.append(out / "route_choice.png")
    plot(numbers, paths[-1])
    return paths


def _normal_pdf(x, mu, sigma):
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * np.sqrt(2.0 * np.pi))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/route_choice"))
    args = parser.parse_args(argv)
    numbers = route_choice_numbers()
    print(format_table(numbers))
    for path in write(numbers, args.out):
        print(f"wrote {path}")
    return numbers


if __name__ == "__main__":
    main()
