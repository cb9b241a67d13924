"""The UCI protocol: hyper-parameters chosen on a validation split, every approximator fitted
with them, test metrics in the original units, a newsvendor decision.

Per data set and split (``bdl.data.uci``, standardised with training statistics):

1. **Tuning** (training data only): MAP fits on 80% of the training set for every prior
   precision x noise model of the grid, the held-out 20% scored every ``chunk_epochs``;
   the pair with the lowest validation NLL wins, and its best epoch count with it.
2. **Fitting**: every approximator with the chosen prior precision, noise model and epochs,
   on the whole training set. MAP-based methods (Laplace, the samplers' initial positions)
   start from the same MAP fit. Laplace re-tunes its prior precision (and the homoscedastic
   noise) by its marginal likelihood, as in Immer et al. (2021).
3. **Scoring**: ``Predictive.affine(y_mean, y_std)`` back to the original units, then
   ``bdl.metrics.evaluate`` (RMSE, NLL, CRPS, calibration error, 90% coverage, ...) and
   ``bdl.decisions.evaluate`` with a newsvendor utility (shortfall 3x as costly as excess;
   the Bayes action is the predictive 0.75-quantile): realised cost and regret.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import bdl
from bdl import decisions, metrics
from bdl.data import UCISplit

# Published references on these splits, test RMSE / test NLL (mean, standard error) as in
# ../shared/data/uci/README.md: MC dropout (Gal & Ghahramani 2016, grid-search re-run), deep
# ensembles of 5 nets (Lakshminarayanan et al. 2017, Table 1), PBP (Hernandez-Lobato & Adams
# 2015, as reported there).
REFERENCES: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "bostonHousing": {"mc_dropout": {"rmse": (2.90, 0.18), "nll": (2.40, 0.04)},
                      "deep_ensembles": {"rmse": (3.28, 1.00), "nll": (2.41, 0.25)},
                      "pbp": {"rmse": (3.01, 0.18), "nll": (2.57, 0.09)}},
    "concrete": {"mc_dropout": {"rmse": (4.82, 0.16), "nll": (2.93, 0.02)},
                 "deep_ensembles": {"rmse": (6.03, 0.58), "nll": (3.06, 0.18)},
                 "pbp": {"rmse": (5.67, 0.09), "nll": (3.16, 0.02)}},
    "energy": {"mc_dropout": {"rmse": (0.54, 0.06), "nll": (1.21, 0.01)},
               "deep_ensembles": {"rmse": (2.09, 0.29), "nll": (1.38, 0.22)},
               "pbp": {"rmse": (1.80, 0.05), "nll": (2.04, 0.02)}},
    "wine-quality-red": {"mc_dropout": {"rmse": (0.62, 0.01), "nll": (0.93, 0.01)},
                         "deep_ensembles": {"rmse": (0.64, 0.04), "nll": (0.94, 0.12)},
                         "pbp": {"rmse": (0.64, 0.01), "nll": (0.97, 0.01)}},
    "yacht": {"mc_dropout": {"rmse": (0.67, 0.05), "nll": (1.25, 0.01)},
              "deep_ensembles": {"rmse": (1.58, 0.48), "nll": (1.18, 0.21)},
              "pbp": {"rmse": (1.02, 0.05), "nll": (1.63, 0.02)}},
}
REFERENCE_NAMES = {"mc_dropout": "MC dropout", "deep_ensembles": "deep ensembles (5)",
                   "pbp": "PBP"}

# newsvendor: a unit of shortfall costs 3x a unit of excess (Bayes action: 0.75-quantile)
UNDER_COST, OVER_COST = 3.0, 1.0
ACTION_GRID = 401  # candidate quantities, evenly spaced over the training range +- 3 sd

DEFAULT_METHODS = ("map", "ensemble", "laplace", "vi", "sgld", "sghmc", "cyclical_sgld")
FULL_METHODS = (*DEFAULT_METHODS, "nuts")


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Sizes and grids of one protocol (``QUICK`` or ``FULL``; ``TINY`` for tests).

    Attributes:
      num_splits: splits run (the first ``num_splits`` of each data set).
      methods: approximators run by default.
      prior_grid: prior precisions tried on the validation split.
      noise_grid: noise models tried (``"homoscedastic"``: learned scale; ``"heteroscedastic"``:
        a mean and a scale head).
      max_epochs: full-batch Adam steps of a tuning fit; the final fits use the best count.
      chunk_epochs: validation every this many epochs (the epoch count's resolution).
      validation_fraction: share of the training set held out for tuning.
      learning_rate: Adam's step size (standardised data).
      patience: a tuning fit stops after this many validations without improvement.
      options: per-method options on top of the tuned ones.
    """

    num_splits: int
    methods: tuple[str, ...] = DEFAULT_METHODS
    prior_grid: tuple[float, ...] = (1.0, 10.0, 100.0)
    noise_grid: tuple[str, ...] = ("homoscedastic", "heteroscedastic")
    max_epochs: int = 2000
    chunk_epochs: int = 100
    validation_fraction: float = 0.2
    learning_rate: float = 3e-3
    patience: int = 5
    options: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


_SG = {"num_chains": 2, "batch_size": 128}
QUICK_OPTIONS: dict[str, dict[str, Any]] = {
    "ensemble": {"num_members": 5},
    "laplace": {"hessian": "full", "subset": "all", "tune_steps": 200},
    "vi": {},
    "sgld": {**_SG, "num_burnin": 1000, "num_samples": 20, "thinning": 50},
    "sghmc": {**_SG, "num_burnin": 200, "num_samples": 20, "thinning": 10},
    "cyclical_sgld": {**_SG, "num_cycles": 4, "steps_per_cycle": 500, "num_samples": 20},
    "nuts": {"num_chains": 2, "num_warmup": 300, "num_samples": 50, "thinning": 4,
             "max_num_doublings": 6},
}
FULL_OPTIONS: dict[str, dict[str, Any]] = {
    **QUICK_OPTIONS,
    "sgld": {**_SG, "num_chains": 4, "num_burnin": 2000, "num_samples": 50, "thinning": 50},
    "sghmc": {**_SG, "num_chains": 4, "num_burnin": 500, "num_samples": 50, "thinning": 10},
    "cyclical_sgld": {**_SG, "num_chains": 4, "num_cycles": 8, "steps_per_cycle": 1000,
                      "num_samples": 40},
    "nuts": {"num_chains": 4, "num_warmup": 1000, "num_samples": 200, "thinning": 5,
             "max_num_doublings": 8},
}
QUICK = Protocol(num_splits=3, options=QUICK_OPTIONS)
FULL = Protocol(num_splits=20, methods=FULL_METHODS, prior_grid=(0.3, 1.0, 3.0, 10.0, 30.0, 100.0),
                max_epochs=4000, options=FULL_OPTIONS)
TINY = Protocol(num_splits=1, methods=("map", "ensemble", "laplace"), prior_grid=(1.0,),
                noise_grid=("homoscedastic",), max_epochs=40, chunk_epochs=20,
                options={"ensemble": {"num_members": 2},
                         "laplace": {"hessian": "diag", "subset": "all", "tune_steps": 10}})
PROTOCOLS = {"quick": QUICK, "full": FULL, "tiny": TINY}
# predictives that sample parameters (VI, heteroscedastic Laplace) draw this many
PREDICT_SAMPLES = 100


# ------------------------------------------------------------------------------- tuning
def model_and_likelihood(split: UCISplit, noise: str):
    """The protocol's one-hidden-layer ReLU MLP (``split.n_hidden`` units) and Gaussian."""
    likelihood = bdl.likelihoods.Gaussian(noise)
    model = bdl.models.MLP((split.n_hidden,), out=likelihood.output_size(1), activation="relu")
    return model, likelihood


def tune(split: UCISplit, protocol: Protocol, key: jax.Array,
         methods: tuple[str, ...] = ()) -> dict[str, Any]:
    """Prior precision, noise model and epochs by validation NLL on the training data only.

    The grid is searched with MAP fits. A MAP's own noise estimate is too small for the
    homoscedastic model (it fits the training residuals), so the MAP ranking can favour the
    heteroscedastic model where a predictive that carries parameter uncertainty does better
    with a homoscedastic one: each of ``SELF_TUNED`` in ``methods`` therefore picks its noise
    model itself, between the best grid point of each, by the validation NLL of its own
    predictive (fitted on the same 80%).

    Returns ``{"prior_precision", "noise", "epochs", "val_nll", "grid": [...],
    "per_method": {method: grid point}, "tune_s"}``; validation NLLs are mean NLL per
    held-out point on the standardised scale.
    """
    start = time.perf_counter()
    grid = []
    for noise in protocol.noise_grid:
        model, likelihood = model_and_likelihood(split, noise)
        for precision in protocol.prior_grid:
            post = bdl.fit("map", model, likelihood, (split.x_train, split.y_train), key=key,
                           **_train_options(protocol, precision, protocol.max_epochs),
                           validation_fraction=protocol.validation_fraction,
                           patience=protocol.patience)
            val = np.asarray(post.info["history"]["val_loss"], np.float64).reshape(-1)
            val = np.where(np.isfinite(val), val, np.inf)
            best = int(np.argmin(val))
            grid.append({"noise": noise, "prior_precision": float(precision),
                         "epochs": (best + 1) * protocol.chunk_epochs,
                         "val_nll": float(val[best])})
    winner = min(grid, key=lambda g: g["val_nll"])
    per_method = {}
    if len(protocol.noise_grid) > 1:
        train, val = _holdout(split, protocol.validation_fraction, key)
        for method in (m for m in SELF_TUNED if m in methods):
            candidates = []
            for noise in protocol.noise_grid:
                point = best_point({"grid": grid}, noise)
                model, likelihood = model_and_likelihood(split, noise)
                post = bdl.fit(method, model, likelihood, train, key=key,
                               **_train_options(protocol, point["prior_precision"],
                                                point["epochs"]),
                               **protocol.options.get(method, {}))
                pred = _predict(post, val[0], jax.random.fold_in(key, 1))
                nll = -float(jnp.mean(pred.log_prob(jnp.asarray(val[1]))))
                candidates.append({**point, "val_nll_own": nll if np.isfinite(nll) else np.inf})
            chosen = min(candidates, key=lambda c: c["val_nll_own"])
            per_method[method] = {**chosen, "candidates": candidates}
    return {**winner, "grid": grid, "per_method": per_method,
            "tune_s": time.perf_counter() - start}


# methods that choose their noise model by their own validation NLL
SELF_TUNED = ("ensemble", "vi")


def _holdout(split: UCISplit, fraction: float, key: jax.Array):
    """``(x, y)`` of the training part and of the held-out part of the training set: the
    rows a fit with ``key`` and ``validation_fraction=fraction`` holds out."""
    from bdl.approximators._optimise import validation_mask

    held = np.asarray(validation_mask(key, len(split.y_train), fraction)) > 0
    return ((split.x_train[~held], split.y_train[~held]),
            (split.x_train[held], split.y_train[held]))


def _predict(posterior: Any, x: np.ndarray, key: jax.Array):
    options = {}
    if "num_samples" in inspect.signature(posterior.predict).parameters:
        options["num_samples"] = PREDICT_SAMPLES
    return posterior.predict(jnp.asarray(x), key=key, **options)


def _train_options(protocol: Protocol, precision: float, epochs: int) -> dict[str, Any]:
    return {"epochs": int(epochs), "chunk_epochs": protocol.chunk_epochs,
            "learning_rate": protocol.learning_rate,
            "prior": bdl.priors.IsotropicGaussian(float(precision))}


# ------------------------------------------------------------------------------ fitting
SAMPLERS = ("sgld", "sghmc", "cyclical_sgld", "hmc", "nuts")
# step sizes of the SG-MCMC kernels from the largest curvature lambda of the negative log
# posterior at the MAP (power iteration): Langevin / Euler steps are stable for
# step < 2 / lambda (SGLD) and step < 2 / sqrt(lambda) (SGHMC's position-momentum updates).
STEP_FACTOR = {"sgld": 0.2, "cyclical_sgld": 0.5, "sghmc": 0.3}


def fit_methods(split: UCISplit, hyper: dict[str, Any], methods: list[str], protocol: Protocol,
                key: jax.Array):
    """Yield ``(method, posterior, fit_seconds)`` for every method, with the tuned ``hyper``.

    Every method uses the tuned prior precision, noise model and epochs, except Laplace: it
    is the homoscedastic GLM Laplace of the best homoscedastic grid point, whose prior
    precision and noise scale it then tunes by its own marginal likelihood. MAP fits are
    shared: Laplace builds on one, the samplers start their chains at one (its time is added
    to theirs) with step sizes set from its curvature. A method that raises yields
    ``(method, exception, seconds)``.
    """
    data = (split.x_train, split.y_train)
    k_map, k_rest = jax.random.split(key)
    maps: dict[tuple, tuple[Any, float]] = {}

    def map_fit(point: dict[str, Any], model: Any, likelihood: Any, train: dict[str, Any]):
        at = (point["noise"], point["prior_precision"], point["epochs"])
        if at not in maps:
            t0 = time.perf_counter()
            post = bdl.fit("map", model, likelihood, data, key=k_map, **train)
            _block(post)
            maps[at] = (post, time.perf_counter() - t0)
        return maps[at]

    lams: dict[tuple, float] = {}

    def curvature(point, model, likelihood, train, map_post) -> float:
        at = (point["noise"], point["prior_precision"], point["epochs"])
        if at not in lams:  # one power iteration per MAP, shared by the SG-MCMC methods
            mode = jax.tree.map(lambda a: a[0], map_post.particles)
            lams[at] = max_curvature(model, likelihood, train["prior"], data, mode)
        return lams[at]

    for i, method in enumerate(methods):
        k = jax.random.fold_in(k_rest, i)
        extra = dict(protocol.options.get(method, {}))
        point = chosen_point(hyper, method)
        model, likelihood = model_and_likelihood(split, point["noise"])
        train = _train_options(protocol, point["prior_precision"], point["epochs"])
        t0 = time.perf_counter()
        try:
            map_s = 0.0
            if method in SELF_TUNED:
                post = bdl.fit(method, model, likelihood, data, key=k, **train, **extra)
            else:
                map_post, map_s = map_fit(point, model, likelihood, train)
                t0 = time.perf_counter()
                if method == "map":
                    post = map_post
                elif method == "laplace":
                    post = bdl.fit(method, model, likelihood, data, key=k,
                                   map_posterior=map_post, prior=train["prior"], **extra)
                else:  # samplers: the tuned prior, chains started at the MAP
                    lam = None
                    if method in STEP_FACTOR and "step_size" not in extra:
                        lam = curvature(point, model, likelihood, train, map_post)
                    post = _fit_sampler(method, model, likelihood, data, k, map_post,
                                        train["prior"], extra, lam)
            _block(post)
            yield method, post, time.perf_counter() - t0 + map_s
        except Exception as err:  # noqa: BLE001 - one failing method must not stop the split
            yield method, err, time.perf_counter() - t0


def _fit_sampler(method, model, likelihood, data, key, map_post, prior, extra, lam):
    """A sampler with every chain at the MAP; with ``lam`` (the largest curvature at the MAP)
    the SG-MCMC step size follows from it (SGHMC's default friction then damps a fixed share
    of the momentum per step)."""
    chains = int(extra.get("num_chains", 4))
    start = jax.tree.map(lambda a: jnp.broadcast_to(a[0], (chains, *a.shape[1:])),
                         map_post.particles)
    if lam is not None:
        extra = {**extra, "step_size": float(STEP_FACTOR[method]
                                             / (np.sqrt(lam) if method == "sghmc" else lam))}
    return bdl.fit(method, model, likelihood, data, key=key, prior=prior,
                   init_positions=start, **extra)


def chosen_point(hyper: dict[str, Any], method: str) -> dict[str, Any]:
    """The tuned grid point (noise model, prior precision, epochs) ``method`` is fitted with:
    Laplace's is the best homoscedastic one, ensemble's and VI's their own choice, the
    others' the MAP grid's winner."""
    if method == "laplace":
        return best_point(hyper, "homoscedastic")
    return hyper.get("per_method", {}).get(method, hyper)


def best_point(hyper: dict[str, Any], noise: str) -> dict[str, Any]:
    """The grid point with the lowest validation NLL among those of ``noise``."""
    candidates = [g for g in hyper.get("grid", []) if g["noise"] == noise]
    if not candidates:
        raise ValueError(f"no {noise} point in the tuning grid")
    return min(candidates, key=lambda g: g["val_nll"])


def max_curvature(model: Any, likelihood: Any, prior: Any, data: tuple, params: Any,
                  iterations: int = 30) -> float:
    """Largest eigenvalue (in magnitude) of the Hessian of the full-data negative log
    posterior at ``params = {"net", "lik"}``, by power iteration on Hessian-vector products."""
    from jax.flatten_util import ravel_pytree

    from bdl.approximators._sampler_common import log_density_fn
    from bdl.training import prepare_data

    x = jnp.asarray(data[0])
    network = bdl.models.as_network(model, x[:1])
    batch = prepare_data(data, likelihood, network, jax.random.key(0))
    log_density = log_density_fn(network, likelihood, prior, int(x.shape[0]))
    flat, unravel = ravel_pytree(params)

    @jax.jit
    def power(flat):
        grad = jax.grad(lambda f: -log_density(unravel(f), batch))

        def step(_, v):
            hv = jax.jvp(grad, (flat,), (v,))[1]
            return hv / jnp.linalg.norm(hv)

        v0 = jax.random.normal(jax.random.key(0), flat.shape, flat.dtype)
        v = jax.lax.fori_loop(0, iterations, step, v0 / jnp.linalg.norm(v0))
        return jnp.abs(jnp.vdot(v, jax.jvp(grad, (flat,), (v,))[1]))

    return float(power(flat))


def _block(posterior: Any) -> None:
    jax.block_until_ready(jax.tree.leaves(getattr(posterior, "particles", {})))


# ------------------------------------------------------------------------------ scoring
def newsvendor(split: UCISplit) -> decisions.Utility:
    """The asymmetric-cost action decision in original units: order ``a``; each unit short
    of ``y`` costs ``UNDER_COST``, each unit over costs ``OVER_COST``."""
    y = split.y_train_original
    lo, hi = float(y.min()) - 3.0 * split.y_std, float(y.max()) + 3.0 * split.y_std
    return decisions.asymmetric(np.linspace(lo, hi, ACTION_GRID, dtype=np.float32),
                                under=UNDER_COST, over=OVER_COST)


def predictive(posterior: Any, split: UCISplit, key: jax.Array):
    """The test predictive in original units."""
    return _predict(posterior, split.x_test, key).affine(split.y_mean, split.y_std)


def score(posterior: Any, split: UCISplit, key: jax.Array) -> dict[str, float]:
    """Accuracy and decision metrics of ``posterior`` on the test split, original units."""
    k_pred, k_dec = jax.random.split(key)
    pred = predictive(posterior, split, k_pred)
    y = jnp.asarray(split.y_test_original)
    out = {k: float(v) for k, v in metrics.evaluate(pred, y).items()}
    d = decisions.evaluate(pred, y, newsvendor(split), key=k_dec)
    out["newsvendor_cost"] = -float(d["realised_utility"])
    out["newsvendor_regret"] = float(d["regret"])
    return out
