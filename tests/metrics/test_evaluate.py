"""``evaluate``: keys, values against the per-example functions, and input errors."""

import jax.numpy as jnp
import numpy as np
import pytest
import scoringrules as sr
from scipy import stats

from bdl import Predictive, metrics
from bdl.metrics import _evaluate

SHAPE = (5, 30)  # e.g. [days, routes]; one shape keeps compilations few


def _gaussian(seed=0):
    rng = np.random.default_rng(seed)
    loc, scale = rng.normal(size=SHAPE), rng.uniform(0.5, 1.5, SHAPE)
    return Predictive.gaussian(loc, scale), loc, scale, loc + scale * rng.normal(size=SHAPE)


@pytest.mark.parametrize("kind", ["gaussian", "mixture", "samples", "point"])
def test_regression_keys_and_floats(kind):
    rng = np.random.default_rng(1)
    y = rng.normal(size=SHAPE)
    pred = {
        "gaussian": lambda: _gaussian()[0],
        "mixture": lambda: Predictive.gaussian_mixture(rng.normal(size=(4, *SHAPE)), 1.0),
        "samples": lambda: Predictive.from_samples(rng.normal(size=(30, *SHAPE))),
        "point": lambda: Predictive.point(np.zeros(SHAPE)),
    }[kind]()
    result = metrics.evaluate(pred, y)
    assert tuple(result) == metrics.REGRESSION_KEYS
    assert {"rmse", "mse", "nll", "crps", "calibration_error", "coverage_90", "sharpness"} <= set(
        result
    )
    assert all(type(v) is float for v in result.values())


def test_gaussian_values_match_references():
    pred, loc, scale, y = _gaussian()
    result = metrics.evaluate(pred, y)
    mse = np.mean((loc - y) ** 2)
    assert result["mse"] == pytest.approx(mse, rel=1e-5)
    assert result["rmse"] == pytest.approx(np.sqrt(mse), rel=1e-5)
    assert result["mae"] == pytest.approx(np.mean(np.abs(loc - y)), rel=1e-5)
    assert result["nll"] == pytest.approx(-np.mean(stats.norm.logpdf(y, loc, scale)), rel=1e-5)
    crps = np.mean(sr.crps_normal(y, loc, scale, backend="numpy"))
    assert result["crps"] == pytest.approx(crps, rel=1e-5)
    lower, upper = stats.norm.interval(0.9, loc, scale)
    assert result["coverage_90"] == pytest.approx(np.mean((y >= lower) & (y <= upper)))
    assert result["interval_width_90"] == pytest.approx(np.mean(upper - lower), rel=1e-4)
    interval = np.mean(sr.interval_score(y, lower, upper, 0.1, backend="numpy"))
    assert result["interval_score_90"] == pytest.approx(interval, rel=1e-4)
    assert result["sharpness"] == pytest.approx(np.sqrt(np.mean(scale**2)), rel=1e-5)
    expected = float(metrics.calibration_error(pred, y))
    assert result["calibration_error"] == pytest.approx(expected, rel=1e-6)


def test_point_predictor_is_honest():
    values, y = jnp.array([0.0, 1.0, 3.0]), jnp.array([0.5, 1.0, 1.0])
    result = metrics.evaluate(Predictive.point(values), y)
    assert result["nll"] == float("inf")
    assert result["crps"] == pytest.approx(result["mae"]) == pytest.approx(2.5 / 3)
    assert result["sharpness"] == 0.0 and result["interval_width_90"] == 0.0


def test_classification_keys_and_values():
    probs = jnp.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    y = jnp.array([0, 1, 1])
    result = metrics.evaluate(Predictive.categorical(probs[None]), y)
    assert tuple(result) == metrics.CLASSIFICATION_KEYS == ("accuracy", "nll", "ece", "brier")
    assert all(type(v) is float for v in result.values())
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["nll"] == pytest.approx(-np.mean(np.log([0.7, 0.3, 0.5])), rel=1e-6)
    brier = np.mean(np.sum((np.asarray(probs) - np.eye(3)[np.asarray(y)]) ** 2, -1))
    assert result["brier"] == pytest.approx(brier, rel=1e-6)


def test_compiles_once_per_shape():
    pred, _, _, y = _gaussian()
    metrics.evaluate(pred, y)
    compiled = _evaluate._regression_summary._cache_size()
    for seed in (1, 2):
        pred, _, _, y = _gaussian(seed=seed)
        metrics.evaluate(pred, y)
    assert _evaluate._regression_summary._cache_size() == compiled


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (np.zeros((4, 1)), r"`y` has shape \(4, 1\); expected .* \(4,\)"),
        (np.zeros(5), "`y` has shape"),
        (np.array([0.0, np.nan, 1.0, 2.0]), "`y` contains 1 NaN or infinite"),
        (np.array([0.0, np.inf, 1.0, 2.0]), "`y` contains 1 NaN or infinite"),
    ],
)
def test_regression_input_errors(y, match):
    with pytest.raises(ValueError, match=match):
        metrics.evaluate(Predictive.gaussian(np.zeros(4), 1.0), y)


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (np.array([0, 1, 3]), r"`y` holds class labels in \[0, 3\]"),
        (np.array([-1, 0, 1]), "`y` holds class labels"),
        (np.array([0.0, 1.0, 2.0]), "`y` must hold integer class labels"),
        (np.array([0, 1]), "`y` has shape"),
    ],
)
def test_classification_input_errors(y, match):
    pred = Predictive.categorical(jnp.full((2, 3, 3), 1.0 / 3.0))
    with pytest.raises(ValueError, match=match):
        metrics.evaluate(pred, y)
