"""Predictive.affine: the law of shift + scale * Y, for every regression kind."""

import jax
import numpy as np
import pytest

from bdl import Predictive


def _kinds():
    rng = np.random.default_rng(0)
    loc, scale = rng.normal(size=(3, 5)), rng.uniform(0.5, 2.0, size=(3, 5))
    return {
        "mixture": Predictive.gaussian_mixture(loc, scale, rng.dirichlet(np.ones(3), 5).T),
        "samples": Predictive.from_samples(rng.normal(size=(40, 5))),
        "point": Predictive.point(rng.normal(size=5)),
    }


@pytest.mark.parametrize("kind", ["mixture", "samples", "point"])
def test_moments_cdf_quantile_transform(kind):
    pred = _kinds()[kind]
    shift, scale = 3.0, np.linspace(0.5, 2.0, 5)
    out = pred.affine(shift, scale)
    np.testing.assert_allclose(out.mean(), shift + scale * pred.mean(), rtol=1e-5)
    np.testing.assert_allclose(out.variance(), scale**2 * pred.variance(), rtol=1e-4, atol=1e-6)
    t = np.linspace(-2, 2, 5)
    np.testing.assert_allclose(out.cdf(shift + scale * t), pred.cdf(t), atol=1e-5)
    np.testing.assert_allclose(out.quantile(0.3), shift + scale * pred.quantile(0.3),
                               rtol=1e-4, atol=1e-4)


def test_log_prob_picks_up_the_jacobian():
    pred = _kinds()["mixture"]
    y = np.linspace(-1, 1, 5)
    out = pred.affine(1.0, 4.0)
    np.testing.assert_allclose(out.log_prob(1.0 + 4.0 * y), pred.log_prob(y) - np.log(4.0),
                               rtol=1e-5)


def test_jit_and_bad_arguments():
    pred = _kinds()["mixture"]
    out = jax.jit(lambda p: p.affine(2.0, 3.0))(pred)
    np.testing.assert_allclose(out.mean(), 2.0 + 3.0 * pred.mean(), rtol=1e-5)
    with pytest.raises(ValueError, match="`scale` must be positive"):
        pred.affine(0.0, -1.0)
    with pytest.raises(ValueError, match="`shift`"):
        pred.affine(np.zeros(4), 1.0)
    with pytest.raises(TypeError, match="regression"):
        Predictive.categorical(np.full((2, 3), 1 / 3)).affine(0.0, 1.0)
