"""Real data shipped with scikit-learn (no download): diabetes (regression) and digits
(classification), as several random train/test splits standardised with training statistics.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bdl.data._standardise import standardise_inputs


class Split(NamedTuple):
    """One random train/test split.

    Attributes:
      x_train, x_test: inputs ``[N, D]`` float32, standardised per feature with the training
        split's mean and standard deviation (constant features are only centred).
      y_train, y_test: targets ``[N]``: float32 (standardised like the inputs when
        ``standardise_y``) or int32 class labels.
      y_mean, y_std: the target transform (``y = y_std * y_standardised + y_mean``);
        ``0.0, 1.0`` when targets are left as they are.
      seed: the split's seed.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    y_mean: float
    y_std: float
    seed: int


def make_splits(x: np.ndarray, y: np.ndarray, *, seed: int = 0, num_splits: int = 5,
                test_fraction: float = 0.2, standardise_y: bool = False) -> list[Split]:
    """``num_splits`` random splits of ``x [N, D]``, ``y [N]``; split ``i`` uses seed
    ``seed + i``. Inputs (and optionally targets) are standardised with training statistics."""
    if int(num_splits) < 1:
        raise ValueError(f"`num_splits` must be >= 1; got {num_splits}.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must lie in (0, 1); got {test_fraction}.")
    x, y = np.asarray(x, np.float64), np.asarray(y)
    n_test = int(round(test_fraction * len(x)))
    if not 0 < n_test < len(x):
        raise ValueError(f"`test_fraction`={test_fraction} leaves an empty split of {len(x)}.")
    out = []
    for i in range(int(num_splits)):
        perm = np.random.default_rng(seed + i).permutation(len(x))
        test, train = perm[:n_test], perm[n_test:]
        xtr, xte = standardise_inputs(x, train, test)
        if y.dtype.kind in "iu":
            ytr, yte, ym, ys = y[train].astype(np.int32), y[test].astype(np.int32), 0.0, 1.0
        else:
            ym, ys = (float(y[train].mean()), float(y[train].std())) if standardise_y else (0.0, 1.0)
            ytr = ((y[train] - ym) / ys).astype(np.float32)
            yte = ((y[test] - ym) / ys).astype(np.float32)
        out.append(Split(xtr, ytr, xte, yte, ym, ys, seed + i))
    return out


def diabetes(seed: int = 0, num_splits: int = 5, test_fraction: float = 0.2,
             standardise_y: bool = True) -> list[Split]:
    """scikit-learn's diabetes data: 442 patients x 10 baseline variables; target: disease
    progression one year later (25-346). Returns ``num_splits`` standardised splits."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    return make_splits(x, y, seed=seed, num_splits=num_splits, test_fraction=test_fraction,
                       standardise_y=standardise_y)


def digits(seed: int = 0, num_splits: int = 5, test_fraction: float = 0.2) -> list[Split]:
    """scikit-learn's digits data: 1,797 8x8 images (64 pixel intensities 0-16), 10 classes.
    Returns ``num_splits`` splits with standardised pixels and int32 labels."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return make_splits(x, y.astype(np.int32), seed=seed, num_splits=num_splits,
                       test_fraction=test_fraction)
