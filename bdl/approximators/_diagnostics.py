"""MCMC diagnostics on kept draws: split R-hat and ESS per parameter, sampler statistics.

R-hat is the split Gelman-Rubin statistic and ESS the classic (Geyer) effective sample size of
``numpyro.diagnostics``, the same estimators the peer NUTS benchmark uses. Both are computed
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

from bdl.models import Params

MAX_PER_LEAF = 1000


def leaf_names(tree: Params) -> list[str]:
    """Dotted names of the leaves of ``tree`` (``"net.layers.0.kernel"``), in leaf order."""
    names = []
    for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
        names.append(".".join(parts))
    return names


def chain_diagnostics(draws: Params, *, max_per_leaf: int = MAX_PER_LEAF) -> dict[str, Any]:
    """Split R-hat and ESS of draws ``[C, D, ...]`` (C chains, D draws each).

    Returns ``{"rhat_max", "ess_min", "ess_median", "parameters": {name: {"size", "checked",
    "rhat_max", "rhat_median", "ess_min", "ess_median"}}}`` (plain floats; NaN when there are
    fewer than 4 draws per chain). Chains of one draw or constant parameters give NaN entries,
    which the overall extremes ignore.
    """
    per_leaf: dict[str, dict[str, float]] = {}
    all_rhat, all_ess = [], []
    for name, leaf in zip(leaf_names(draws), jax.tree.leaves(draws), strict=True):
        arr = np.asarray(leaf, np.float64)
        c, d = arr.shape[:2]
        flat = arr.reshape(c, d, -1)
        size = flat.shape[-1]
        if size > max_per_leaf:
            flat = flat[..., np.linspace(0, size - 1, max_per_leaf).astype(int)]
        rhat, ess = _rhat_ess(flat)
        all_rhat.append(rhat)
        all_ess.append(ess)
        per_leaf[name] = {
            "size": int(size), "checked": int(flat.shape[-1]),
            "rhat_max": _nan(np.nanmax, rhat), "rhat_median": _nan(np.nanmedian, rhat),
            "ess_min": _nan(np.nanmin, ess), "ess_median": _nan(np.nanmedian, ess),
        }
    rhat = np.concatenate(all_rhat) if all_rhat else np.zeros(0)
    ess = np.concatenate(all_ess) if all_ess else np.zeros(0)
    return {"rhat_max": _nan(np.nanmax, rhat), "ess_min": _nan(np.nanmin, ess),
            "ess_median": _nan(np.nanmedian, ess), "parameters": per_leaf}


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
             f"{d['ess_median']:.1f}"]
    if "acceptance_rate" in d:
        lines.append(f"acceptance rate {d['acceptance_rate']:.3f}, divergences "
                     f"{d.get('divergences', 0)}, mean integration steps "
                     f"{d.get('mean_integration_steps', float('nan')):.1f}")
    if d.get("nonfinite_draws"):
        lines.append(f"WARNING: {d['nonfinite_draws']} draw(s) hold NaN/inf (step size too large?)")
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


def _nan(fn, values: np.ndarray) -> float:
    values = np.asarray(values, np.float64)
    if values.size == 0 or np.all(np.isnan(values)):
        return float("nan")
    return float(fn(values))
