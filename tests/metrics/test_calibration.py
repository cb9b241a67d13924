"""Regression calibration: PIT, coverage, calibration curve and error, sharpness."""

import jax.numpy as jnp
import numpy as np
import pytest

from bdl import Predictive, metrics

N = 20_000
DRAWS = 200


def _well_specified(kind: str):
    """A predictive of ``kind`` and outcomes drawn from it (so it is calibrated)."""
    rng = np.random.default_rng(0)
    loc = rng.normal(0.0, 3.0, N)
    if kind == "gaussian":
        scale = rng.uniform(0.5, 2.0, N)
        return Predictive.gaussian(loc, scale), loc + scale * rng.normal(size=N)
    if kind == "mixture":
        locs = loc + rng.normal(0.0, 1.5, (3, N))
        comp = rng.integers(0, 3, N)
        y = locs[comp, np.arange(N)] + 0.7 * rng.normal(size=N)
        return Predictive.gaussian_mixture(locs, 0.7), y
    draws = loc + rng.normal(size=(DRAWS, N))
    return Predictive.from_samples(draws), loc + rng.normal(size=N)


@pytest.mark.parametrize("kind", ["gaussian", "mixture", "samples"])
def test_calibrated_predictive(kind):
    pred, y = _well_specified(kind)
    assert float(metrics.calibration_error(pred, y)) < 0.01
    # The empirical 5%-95% interval of n draws holds a new draw with probability 0.9 (n-1)/(n+1).
    expected = 0.9 * (DRAWS - 1) / (DRAWS + 1) if kind == "samples" else 0.9
    assert abs(float(jnp.mean(metrics.coverage(pred, y, 0.9))) - expected) < 0.01


def test_too_narrow_predictive_is_miscalibrated():
    pred, y = _well_specified("gaussian")
    narrow = Predictive.gaussian(pred.mean(), 0.5 * pred.std())
    assert float(metrics.calibration_error(narrow, y)) > 0.05
    assert float(jnp.mean(metrics.coverage(narrow, y, 0.9))) < 0.7


def test_calibration_curve_shapes_and_definition():
    pred, y = _well_specified("gaussian")
    curve = metrics.calibration_curve(pred, y)
    assert curve.expected.shape == curve.observed.shape == (19,)
    np.testing.assert_allclose(curve.expected, np.linspace(0.05, 0.95, 19), atol=1e-6)
    u = np.asarray(metrics.pit(pred, y))
    custom = metrics.calibration_curve(pred, y, levels=[0.2, 0.5])
    np.testing.assert_allclose(custom.observed, [np.mean(u <= 0.2), np.mean(u <= 0.5)], atol=1e-6)
    err = metrics.calibration_error(pred, y)
    np.testing.assert_allclose(err, np.mean(np.abs(curve.observed - curve.expected)), rtol=1e-5)


def test_pit_of_a_calibrated_gaussian_is_uniform():
    pred, y = _well_specified("gaussian")
    counts, _ = np.histogram(np.asarray(metrics.pit(pred, y)), bins=10, range=(0.0, 1.0))
    np.testing.assert_allclose(counts / N, 0.1, atol=0.01)


def test_sharpness_is_root_mean_variance():
    pred = Predictive.gaussian(jnp.zeros(2), jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(metrics.sharpness(pred), np.sqrt(2.5), rtol=1e-6)
    assert float(metrics.sharpness(Predictive.point(jnp.zeros(3)))) == 0.0


def test_bad_levels_are_rejected():
    pred, y = Predictive.gaussian(jnp.zeros(3), 1.0), jnp.zeros(3)
    with pytest.raises(ValueError, match="`levels`"):
        metrics.calibration_curve(pred, y, levels=[0.5, 1.5])
    with pytest.raises(ValueError, match="`levels`"):
        metrics.calibration_error(pred, y, levels=[[0.5]])
