"""Standardising a train/test split with the training part's statistics only."""

from __future__ import annotations

import numpy as np


def standardise_inputs(x: np.ndarray, train: np.ndarray, test: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``x [N, D]`` rows ``train`` and ``test``, each feature centred and scaled by the
    training mean and standard deviation (features constant on the training rows are only
    centred); float32 ``([N_train, D], [N_test, D])``."""
    mu, sd = x[train].mean(0), x[train].std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return ((x[train] - mu) / sd).astype(np.float32), ((x[test] - mu) / sd).astype(np.float32)
