"""Bad inputs raise ValueError naming the argument."""

import jax.numpy as jnp
import numpy as np
import pytest

from bdl import Predictive

G = Predictive.gaussian(jnp.zeros(3), 1.0)
C = Predictive.categorical(jnp.full((2, 3, 4), 0.25))
NAN = float("nan")

CASES = {
    "scale zero": (lambda: Predictive.gaussian(0.0, 0.0), "`scale`"),
    "scale negative": (lambda: Predictive.gaussian_mixture(jnp.zeros((2, 3)), -1.0), "`scale`"),
    "scale NaN": (lambda: Predictive.gaussian(0.0, NAN), "`scale`"),
    "loc NaN": (lambda: Predictive.gaussian(jnp.array([0.0, NAN]), 1.0), "`loc`"),
    "loc inf": (lambda: Predictive.gaussian_mixture(jnp.array([[jnp.inf]]), 1.0), "`loc`"),
    "values NaN": (lambda: Predictive.point([NAN]), "`values`"),
    "samples NaN": (lambda: Predictive.from_samples([[0.0], [NAN]]), "`samples`"),
    "logits NaN": (lambda: Predictive.categorical(logits=[[0.0, NAN]]), "`logits`"),
    "weights sum": (
        lambda: Predictive.gaussian_mixture(jnp.zeros((2, 3)), 1.0, weights=[0.3, 0.3]),
        "`weights`",
    ),
    "weights negative": (
        lambda: Predictive.gaussian_mixture(jnp.zeros((2, 3)), 1.0, weights=[1.5, -0.5]),
        "`weights`",
    ),
    "weights rank": (
        lambda: Predictive.gaussian_mixture(jnp.zeros((2, 3, 3)), 1.0, jnp.full((2, 3), 0.5)),
        "`weights`",
    ),
    "weights length": (
        lambda: Predictive.categorical(jnp.full((2, 3), 1 / 3), weights=[1.0]),
        "`weights`",
    ),
    "probs outside [0, 1]": (lambda: Predictive.categorical([[1.5, -0.5]]), "`probs`"),
    "probs sum": (lambda: Predictive.categorical([[0.5, 0.2]]), "`probs`"),
    "probs rank": (lambda: Predictive.categorical([0.5, 0.5]), "`probs`"),
    "logits rank": (lambda: Predictive.categorical(logits=[0.0, 1.0]), "`logits`"),
    "probs and logits": (lambda: Predictive.categorical([[1.0]], logits=[[0.0]]), "`probs`"),
    "loc rank": (lambda: Predictive.gaussian_mixture(0.0, 1.0), "`loc`"),
    "scale rank": (lambda: Predictive.gaussian_mixture(jnp.zeros(3), jnp.ones((3, 3))), "`scale`"),
    "scale shape": (lambda: Predictive.gaussian(jnp.zeros(3), jnp.ones(4)), "`scale`"),
    "samples rank": (lambda: Predictive.from_samples(1.0), "`samples`"),
    "one sample": (lambda: Predictive.from_samples([[1.0, 2.0]]), "`samples`"),
    "q above 1": (lambda: G.quantile(1.5), "`q`"),
    "q below 0": (lambda: Predictive.from_samples(jnp.zeros((3, 2))).quantile(-0.1), "`q`"),
    "q NaN": (lambda: Predictive.point(0.0).quantile(NAN), "`q`"),
    "level": (lambda: G.interval(1.2), "`level`"),
    "y shape": (lambda: G.log_prob(jnp.zeros(4)), "`y`"),
    "t shape": (lambda: G.cdf(jnp.zeros((2, 4))), "`t`"),
    "q shape": (lambda: G.quantile(jnp.full(2, 0.5)), "`q`"),
    "point y shape": (lambda: Predictive.point(jnp.zeros(3)).log_prob(jnp.zeros(2)), "`y`"),
    "samples t shape": (
        lambda: Predictive.from_samples(jnp.zeros((3, 2))).cdf(jnp.zeros(3)),
        "`t`",
    ),
    "labels shape": (lambda: C.log_prob(jnp.zeros(2, int)), "`y`"),
    "labels range": (lambda: C.log_prob(jnp.array([0, 4, 1])), "`y`"),
    "labels negative": (lambda: C.log_prob(-1), "`y`"),
    "labels float": (lambda: C.log_prob(jnp.zeros(3)), "`y`"),
    "take axis": (lambda: G.take(0, axis=1), "`axis`"),
    "take indices": (lambda: G.take(jnp.array([0, 3])), "`indices`"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_names_argument(case):
    make, name = CASES[case]
    with pytest.raises(ValueError, match=name):
        make()


def test_valid_edge_inputs_pass():
    np.testing.assert_allclose(
        G.quantile(jnp.array([0.0, 1.0, 0.5])), [-np.inf, np.inf, 0.0], atol=1e-6
    )
    Predictive.gaussian_mixture(jnp.zeros((2, 3)), 1.0, weights=[1.0, 0.0])  # a zero weight
    Predictive.categorical([[1.0, 0.0]])  # a zero probability
    Predictive.gaussian_mixture(jnp.zeros((2, 3)), jnp.ones(3))  # scale shared over samples


def test_unsupported_methods_say_so():
    with pytest.raises(NotImplementedError, match="Samples.*aleatoric_variance"):
        Predictive.from_samples(jnp.zeros((3, 2))).aleatoric_variance()
    with pytest.raises(NotImplementedError, match="Categorical.*cdf"):
        C.cdf(0.0)


def test_observed_column_against_a_vector_batch_is_refused():
    """y [N, 1] against batch [N] would broadcast to [N, N] and average into a meaningless
    NLL; log_prob and cdf refuse it unless broadcast=True is asked for."""
    pred = Predictive.gaussian(jnp.zeros(4), jnp.ones(4))
    y = jnp.arange(4.0)
    with pytest.raises(ValueError, match="`y` of shape \\(4, 1\\)"):
        pred.log_prob(y[:, None])
    with pytest.raises(ValueError, match="`t` of shape \\(4, 1\\) is a column"):
        pred.cdf(y[:, None])
    assert pred.log_prob(y[:, None], broadcast=True).shape == (4, 4)
    assert pred.log_prob(y).shape == (4,)
    assert pred.cdf(jnp.zeros((3, 1))).shape == (3, 4)  # a batch of thresholds still works
