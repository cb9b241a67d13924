"""scikit-learn loaders: standardised with training statistics, distinct splits."""

import numpy as np
import pytest

from bdl.data import sklearn_sets


def test_diabetes_splits_standardised_with_training_statistics():
    splits = sklearn_sets.diabetes(seed=0, num_splits=2)
    assert len(splits) == 2
    sp = splits[0]
    assert sp.x_train.shape == (354, 10) and sp.x_test.shape == (88, 10)
    np.testing.assert_allclose(sp.x_train.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(sp.x_train.std(0), 1.0, atol=1e-4)
    np.testing.assert_allclose(sp.y_train.mean(), 0.0, atol=1e-5)
    assert 100 < sp.y_mean < 200 and sp.y_std > 10
    y_test = sp.y_test * sp.y_std + sp.y_mean
    assert y_test.min() >= 25 - 1e-3 and y_test.max() <= 346 + 1e-3
    assert not np.array_equal(splits[0].y_test, splits[1].y_test)


def test_digits_labels_and_constant_pixels():
    sp = sklearn_sets.digits(seed=1, num_splits=1)[0]
    assert sp.x_train.shape[1] == 64 and sp.y_train.dtype == np.int32
    assert set(np.unique(sp.y_train)) == set(range(10))
    assert np.all(np.isfinite(sp.x_train)) and np.all(np.isfinite(sp.x_test))
    assert sp.y_mean == 0.0 and sp.y_std == 1.0


def test_bad_arguments():
    x, y = np.zeros((10, 2)), np.zeros(10)
    with pytest.raises(ValueError, match="num_splits"):
        sklearn_sets.make_splits(x, y, num_splits=0)
    with pytest.raises(ValueError, match="test_fraction"):
        sklearn_sets.make_splits(x, y, test_fraction=1.0)
