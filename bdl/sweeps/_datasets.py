"""A small registry of named data sets with a fixed, deterministic train/test split.

Every data set is standardised with the training split's statistics (inputs per feature;
regression targets too), so one learning rate, one prior and one utility grid fit them all.
Data sets are built once per process and cached.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = ["Dataset", "available_datasets", "get_dataset", "register_dataset"]


class Dataset(NamedTuple):
    """A standardised train/test split.

    Attributes:
      name: registry name.
      task: ``"regression"`` or ``"classification"``.
      x_train, y_train: ``[N, D]`` float32 inputs; ``[N]`` float32 targets or int32 labels.
      x_test, y_test: the held-out split, same layout.
      num_classes: number of classes (classification), else ``None``.
    """

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int | None = None


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int):
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    return x[perm[n_test:]], y[perm[n_test:]], x[perm[:n_test]], y[perm[:n_test]]


def _standardised(name: str, task: str, x, y, *, test_fraction=0.25, seed=0, num_classes=None):
    x = np.asarray(x, np.float64)
    xtr, ytr, xte, yte = _split(x, np.asarray(y), test_fraction, seed)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-12
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    if task == "regression":
        ym, ys = ytr.mean(), ytr.std() + 1e-12
        ytr, yte = ((ytr - ym) / ys).astype(np.float32), ((yte - ym) / ys).astype(np.float32)
    else:
        ytr, yte = ytr.astype(np.int32), yte.astype(np.int32)
    return Dataset(name, task, xtr.astype(np.float32), ytr, xte.astype(np.float32), yte,
                   num_classes)


def _sine() -> Dataset:
    """1-D regression: ``y = sin(2x) + 0.2 eps`` on ``x ~ U(-2, 2)``, 256 points."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-2.0, 2.0, size=(256, 1))
    y = np.sin(2.0 * x[:, 0]) + 0.2 * rng.normal(size=256)
    return _standardised("sine", "regression", x, y)


def _diabetes() -> Dataset:
    """scikit-learn's diabetes regression data (442 x 10; shipped with the package)."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    return _standardised("diabetes", "regression", x, y, test_fraction=0.2)


def _moons() -> Dataset:
    """Two interleaved half-moons (``sklearn.datasets.make_moons``), 400 points, 2 classes."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=400, noise=0.2, random_state=0)
    return _standardised("moons", "classification", x, y, num_classes=2)


_REGISTRY: dict[str, Callable[[], Dataset]] = {
    "sine": _sine,
    "diabetes": _diabetes,
    "moons": _moons,
}


def available_datasets() -> list[str]:
    """Names accepted by :func:`get_dataset` and by a sweep's ``grid.dataset``."""
    return sorted(_REGISTRY)


def register_dataset(name: str, build: Callable[[], Dataset]) -> None:
    """Register ``build() -> Dataset`` under ``name`` (it must be deterministic)."""
    _REGISTRY[name] = build
    get_dataset.cache_clear()


@functools.cache
def get_dataset(name: str) -> Dataset:
    """The data set ``name`` (built once per process)."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown dataset {name!r}; available: {', '.join(available_datasets())}.")
    return _REGISTRY[name]()
