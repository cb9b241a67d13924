import jax.numpy as jnp
import numpy as np
from scipy import stats

import bdl


def test_isotropic_gaussian_log_prob_matches_scipy_with_per_layer_precision():
    params = {"layers": {0: {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)},
                         1: {"kernel": 2 * jnp.ones((3, 1)), "bias": jnp.ones(1)}}}
    prior = bdl.priors.IsotropicGaussian({"layers/1": 4.0}, default=0.5)
    expected = (stats.norm(0, 1 / np.sqrt(0.5)).logpdf(np.r_[np.ones(6), np.zeros(3)]).sum()
                + stats.norm(0, 0.5).logpdf(np.r_[2 * np.ones(3), np.ones(1)]).sum())
    np.testing.assert_allclose(float(prior.log_prob(params)), expected, rtol=1e-5)
