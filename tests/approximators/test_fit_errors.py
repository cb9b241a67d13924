"""bdl.fit rejects bad input with errors that name the argument."""

import jax
import numpy as np
import pytest

import bdl

X = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
Y = X[:, 0].copy()
MLP = bdl.models.MLP((4,))
GAUSS = bdl.likelihoods.Gaussian()


def _fit(method="map", model=MLP, lik=GAUSS, data=(X, Y), **kw):
    return bdl.fit(method, model, lik, data, key=jax.random.key(0), epochs=1, **kw)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(method="laplaec"), "Unknown method 'laplaec'; available: .*ensemble"),
        (dict(data=(X, Y[:-1])), "same number of examples"),
        (dict(data=(X[:0], Y[:0])), "`x` is empty"),
        (dict(data=(np.where(X > 1, np.nan, X), Y)), "`x` contains"),
        (dict(data=(X, np.where(Y > 1, np.inf, Y))), "`y` contains"),
        (dict(data=X), "pair"),
        (dict(model=bdl.models.MLP((4,), out=3)), "`model` outputs 3"),
        (dict(lik=bdl.likelihoods.Gaussian("heteroscedastic")), "needs 2"),
        (dict(lik=bdl.likelihoods.Categorical()), "integer class labels"),
        (dict(lik=bdl.likelihoods.Categorical(), model=bdl.models.MLP((4,), out=3),
              data=(X, np.arange(20))), r"labels in \[0, 19\]"),
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(num_members=3), r"Unknown option\(s\) \['num_members'\] for method 'map'"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _fit(**kwargs)


def test_likelihood_options_are_checked():
    with pytest.raises(ValueError, match="noise"):
        bdl.likelihoods.Gaussian("heteroskedastic")
    with pytest.raises(ValueError, match="scale"):
        bdl.likelihoods.Gaussian(scale=0.0)
    with pytest.raises(ValueError, match="precision"):
        bdl.priors.IsotropicGaussian(-1.0)


def test_available_lists_the_methods():
    assert {"map", "ensemble"} <= set(bdl.available())
