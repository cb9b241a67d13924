"""MCMC diagnostics on kept draws: split R-hat and ESS per parameter, sampler statistics.

R-hat is the split Gelman-Rubin statistic and ESS the classic (Geyer) effective sample size of
``numpyro.diagnostics``, the same estimators the peer NUTS benchmark uses; the bulk ESS is the
same ESS of the rank-normalised draws (Vehtari et al. 2021), robust to heavy tails. Both are computed
per scalar parameter and summarised per parameter array (a leaf of the ``{"net", "lik"}``
tree); leaves with more than ``max_per_leaf`` scalars are summarised on an evenly spaced
subset of them (recorded as ``checked``).
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import numpy as np
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from scipy.special import ndtri
from scipy.stats import rankdata

from bdl._warnings import DiagnosticsWarning
from bdl.models import Params

MAX_PER_LEAF = 1000

# When the draws are not to be trusted (``check_diagnostics``)
RHAT_MAX = 1.1
ESS_MIN = 50  # bulk ESS below this, or below ESS_MIN_FRACTION of the draws, is "tiny"
ESS_MIN_FRACTION = 0.01
DIVERGENCE_MAX_FRACTION = 0.02


def leaf_names(tree: Params) -> list[str]:
    """Dotted names of the leaves of ``tree`` (``"net.layers.0.kernel"``), in leaf order."""
    names = []
    for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
        names.append(".".join(parts))
    return names


def chain_diagnostics(draws: Params, *, max_per_leaf: int = MAX_PER_LEAF) -> dict[str, Any]:
    """Split R-hat and ESS of draws ``[C, D, ...]`` (C chains, D draws each).

    Returns ``{"rhat_max", "ess_min", "ess_median", "bulk_ess_min", "parameters": {name:
    {"size", "checked", "rhat_max", "rhat_median", "ess_min", "ess_median", "bulk_ess_min"}}}``
    (plain floats; NaN when there are fewer than 4 draws per chain). Chains of one draw or
    constant parameters give NaN entries, which the overall extremes ignore.
    """
    per_leaf: dict[str, dict[str, float]] = {}
    all_rhat, all_ess, all_bulk = [], [], []
    for name, leaf in zip(leaf_names(draws), jax.tree.leaves(draws), strict=True):
        arr = np.asarray(leaf, np.float64)
        c, d = arr.shape[:2]
        flat = arr.reshape(c, d, -1)
        size = flat.shape[-1]
        if size > max_per_leaf:
            flat = flat[..., np.linspace(0, size - 1, max_per_leaf).astype(int)]
        rhat, ess = _rhat_ess(flat)
        bulk = np.maximum(_rhat_ess(_rank_normalise(flat))[1], 0.0)  # < 0: no information
        all_rhat.append(rhat)
        all_ess.append(ess)
        all_bulk.append(bulk)
        per_leaf[name] = {
            "size": int(size), "checked": int(flat.shape[-1]),
            "rhat_max": _nan(np.nanmax, rhat), "rhat_median": _nan(np.nanmedian, rhat),
            "ess_min": _nan(np.nanmin, ess), "ess_median": _nan(np.nanmedian, ess),
            "bulk_ess_min": _nan(np.nanmin, bulk),
        }
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)
    rhat, ess, bulk = cat(all_rhat), cat(all_ess), cat(all_bulk)
    return {"rhat_max": _nan(np.nanmax, rhat), "ess_min": _nan(np.nanmin, ess),
            "ess_median": _nan(np.nanmedian, ess), "bulk_ess_min": _nan(np.nanmin, bulk),
            "parameters": per_leaf}


def check_diagnostics(method: str, diagnostics: dict[str, Any], advice: dict[str, str],
                      *, stacklevel: int = 2) -> list[str]:
    """Warn (``bdl.DiagnosticsWarning``) when the draws are not to be trusted: max split R-hat
    above ``RHAT_MAX``, the smallest bulk ESS below ``ESS_MIN`` or ``ESS_MIN_FRACTION`` of the
    draws, or divergences above ``DIVERGENCE_MAX_FRACTION`` of the sampling steps. One check
    for every sampler.

    ``advice`` maps ``"rhat"``, ``"ess"`` and ``"divergences"`` to what to change (the options,
    by name). Returns the problems found (also in ``diagnostics["problems"]`` by the caller).
    """
    d = diagnostics
    draws = int(d.get("num_chains", 1)) * int(d.get("num_draws", 0))
    problems = []
    if d.get("rhat_max", np.nan) > RHAT_MAX:
        problems.append(f"max split R-hat {d['rhat_max']:.3g} > {RHAT_MAX} (the chains "
                        f"disagree); {advice['rhat']}")
    bulk = d.get("bulk_ess_min", np.nan)
    if bulk < ESS_MIN or bulk < ESS_MIN_FRACTION * draws:
        problems.append(f"smallest bulk ESS {bulk:.3g} of {draws} draws (< {ESS_MIN} or < "
                        f"{ESS_MIN_FRACTION:.0%} of the draws); {advice['ess']}")
    steps = int(d.get("num_sampling_steps", 0)) * int(d.get("num_chains", 1))
    if "divergences" in d and steps and d["divergences"] > DIVERGENCE_MAX_FRACTION * steps:
        problems.append(f"{d['divergences']} divergent transitions in {steps} steps "
                        f"({d['divergences'] / steps:.1%} > {DIVERGENCE_MAX_FRACTION:.0%}); "
                        f"{advice['divergences']}")
    if problems:
        warnings.warn(f"{method}: the draws are not to be trusted: " + "; ".join(problems) + ".",
                      DiagnosticsWarning, stacklevel=stacklevel + 1)
    return problems


def sampler_statistics(totals: dict[str, np.ndarray], num_sampling_steps: int
                       ) -> dict[str, Any]:
    """Acceptance rate, divergences and trajectory length from the per-chain sums of a
    sampler's per-step statistics (HMC/NUTS); empty for samplers that report none."""
    out: dict[str, Any] = {}
    steps = max(int(num_sampling_steps), 1)
    if "acceptance_rate" in totals:
        acc = np.asarray(totals["acceptance_rate"], np.float64) / steps
        out["acceptance_rate"] = float(acc.mean())
        out["acceptance_rate_per_chain"] = acc.tolist()
    if "diverging" in totals:
        div = np.asarray(totals["diverging"]).round().astype(int)
        out["divergences"] = int(div.sum())
        out["divergences_per_chain"] = div.tolist()
    if "num_integration_steps" in totals:
        out["mean_integration_steps"] = float(
            np.asarray(totals["num_integration_steps"], np.float64).mean() / steps)
    return out


def format_diagnostics(diagnostics: dict[str, Any]) -> str:
    """A few human-readable lines (for experiment scripts and ``SamplePosterior.summary``)."""
    d = diagnostics
    lines = [f"{d.get('num_chains', '?')} chain(s) x {d.get('num_draws', '?')} draws: "
             f"split R-hat max {d['rhat_max']:.3f}, ESS min {d['ess_min']:.1f} / median "
             f"{d['ess_median']:.1f}, bulk ESS min {d.get('bulk_ess_min', float('nan')):.1f}"]
    if "acceptance_rate" in d:
        lines.append(f"acceptance rate {d['acceptance_rate']:.3f}, divergences "
                     f"{d.get('divergences', 0)}, mean integration steps "
                     f"{d.get('mean_integration_steps', float('nan')):.1f}")
    for problem in d.get("problems", []):
        lines.append(f"WARNING: {problem}")
    width = max((len(n) for n in d["parameters"]), default=0)
    for name, p in d["parameters"].items():
        lines.append(f"  {name:<{width}}  R-hat max {p['rhat_max']:.3f}  ESS min "
                     f"{p['ess_min']:.1f}  ({p['size']} values)")
    return "\n".join(lines)


def to_inference_data(draws: Params, draw_info: dict[str, np.ndarray]):
    """An ArviZ ``InferenceData`` (ArviZ >= 1: a ``DataTree``) with a ``posterior`` group of
    ``[chain, draw, ...]`` arrays named by ``leaf_names`` and a ``sample_stats`` group
    (``lp``, ``acceptance_rate``, ``diverging``, ``n_steps`` where the sampler reports them).
    """
    try:
        import arviz as az
    except ImportError as err:  # optional dependency
        raise ImportError(
            "to_arviz() needs ArviZ, an optional dependency of bdl: pip install arviz"
        ) from err
    posterior = {n: np.asarray(a) for n, a in zip(leaf_names(draws), jax.tree.leaves(draws), strict=True)}
    rename = {"logdensity": "lp", "diverging": "diverging", "acceptance_rate": "acceptance_rate",
              "num_integration_steps": "n_steps"}
    stats = {rename.get(k, k): np.asarray(v) for k, v in draw_info.items()}
    if "diverging" in stats:
        stats["diverging"] = stats["diverging"] > 0.5
    groups = {"posterior": posterior}
    if stats:
        groups["sample_stats"] = stats
    try:
        return az.from_dict(**groups)  # ArviZ < 1.0
    except TypeError:
        return az.from_dict(groups)  # ArviZ >= 1.0: one dict of groups


def _rhat_ess(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column split R-hat and ESS of ``[C, D, P]`` draws (NaN where undefined)."""
    nan = np.full(flat.shape[-1], np.nan)
    if flat.shape[1] < 4:
        return nan, nan
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = np.asarray(split_gelman_rubin(flat), np.float64)
        ess = np.asarray(effective_sample_size(flat), np.float64)
    constant = np.all(flat == flat[:1, :1], axis=(0, 1))
    rhat = np.where(constant, np.nan, rhat)
    ess = np.where(constant, np.nan, ess)
    return rhat, ess


def _rank_normalise(flat: np.ndarray) -> np.ndarray:
    """Normal scores of the ranks over all chains and draws, per column of ``[C, D, P]``."""
    c, d, p = flat.shape
    ranks = rankdata(flat.reshape(c * d, p), axis=0)
    return ndtri((ranks - 0.375) / (c * d + 0.25)).reshape(c, d, p)


def _nan(fn, values: np.ndarray) -> float:
    values = np.asarray(values, np.float64)
    if values.size == 0 or np.all(np.isnan(values)):
        return float("nan")
    return float(fn(values))
