"""bdl.data.uci: the standard-split loader (reads ../shared/data/uci; builds bad layouts)."""

from pathlib import Path

import numpy as np
import pytest

import bdl
from bdl.data import uci, uci_datasets, uci_info
from experiments.uci._run import default_root

ROOT = default_root()  # $BDL_UCI_ROOT or ../shared/data/uci
needs_data = pytest.mark.skipif(not ROOT.is_dir(), reason=f"no UCI data at {ROOT}")
SETS = {"bostonHousing": (506, 13), "concrete": (1030, 8), "energy": (768, 8),
        "wine-quality-red": (1599, 11), "yacht": (308, 6)}


@needs_data
def test_the_five_sets_and_their_sizes():
    assert uci_datasets(ROOT) == sorted(SETS)
    for name, (rows, features) in SETS.items():
        info = uci_info(name, ROOT)
        assert (info.num_rows, info.num_features, info.num_splits, info.n_hidden) == (
            rows, features, 20, 50)


@needs_data
@pytest.mark.parametrize("name", sorted(SETS))
def test_shapes_and_disjoint_splits(name):
    rows, features = SETS[name]
    for k in (0, 19):
        s = uci(name, k, ROOT)
        assert s.x_train.shape[1] == s.x_test.shape[1] == features
        assert s.x_train.shape[0] + s.x_test.shape[0] == rows
        assert s.x_train.dtype == s.y_train.dtype == np.float32
        assert s.y_train.shape == (s.x_train.shape[0],)
        train = np.loadtxt(ROOT / name / f"index_train_{k}.txt", dtype=int)
        test = np.loadtxt(ROOT / name / f"index_test_{k}.txt", dtype=int)
        assert np.intersect1d(train, test).size == 0
        assert np.union1d(train, test).size == rows


@needs_data
def test_standardisation_uses_training_statistics_only():
    s = uci("concrete", 3, ROOT)
    np.testing.assert_allclose(s.x_train.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(s.x_train.std(0), 1.0, atol=1e-4)
    np.testing.assert_allclose(s.y_train.mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(s.y_train.std(), 1.0, atol=1e-4)
    # the test split is transformed with the training statistics, not its own
    assert abs(float(s.x_test.mean(0).max())) > 1e-3
    raw = np.loadtxt(ROOT / "concrete" / "data.txt")
    test = np.loadtxt(ROOT / "concrete" / "index_test_3.txt", dtype=int)
    train = np.loadtxt(ROOT / "concrete" / "index_train_3.txt", dtype=int)
    np.testing.assert_allclose(s.y_test_original, raw[test, -1], rtol=1e-5)
    np.testing.assert_allclose(s.y_mean, raw[train, -1].mean(), rtol=1e-10)
    np.testing.assert_allclose(s.y_std, raw[train, -1].std(), rtol=1e-10)
    x0 = (raw[test[0], :8] - raw[train, :8].mean(0)) / raw[train, :8].std(0)
    np.testing.assert_allclose(s.x_test[0], x0, rtol=1e-5, atol=1e-6)


@needs_data
def test_nll_in_original_units_is_standardised_nll_plus_log_std():
    s = uci("yacht", 0, ROOT)
    pred = bdl.Predictive.gaussian(np.zeros_like(s.y_test), 0.7)
    nll_std = -float(np.mean(pred.log_prob(s.y_test)))
    nll_orig = -float(np.mean(pred.affine(s.y_mean, s.y_std).log_prob(s.y_test_original)))
    np.testing.assert_allclose(nll_orig, nll_std + np.log(s.y_std), rtol=1e-5)


def _write_set(root: Path, name="toy", rows=12, splits=2):
    d = root / name
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savetxt(d / "data.txt", rng.normal(size=(rows, 4)))
    np.savetxt(d / "index_features.txt", [0, 1, 2], fmt="%d")
    np.savetxt(d / "index_target.txt", [3], fmt="%d")
    (d / "n_splits.txt").write_text(f"{splits}\n")
    for k in range(splits):
        perm = rng.permutation(rows)
        np.savetxt(d / f"index_train_{k}.txt", perm[3:], fmt="%d")
        np.savetxt(d / f"index_test_{k}.txt", perm[:3], fmt="%d")
    return d


def test_a_layout_built_here_loads(tmp_path):
    _write_set(tmp_path)
    s = uci("toy", 1, tmp_path)
    assert s.x_train.shape == (9, 3) and s.x_test.shape == (3, 3) and s.n_hidden == 50


def test_bad_directory_and_files_say_what_layout_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*index_train_K"):
        uci("concrete", 0, tmp_path / "nowhere")
    d = _write_set(tmp_path)
    with pytest.raises(FileNotFoundError, match="No data set 'other'.*found: toy"):
        uci("other", 0, tmp_path)
    with pytest.raises(ValueError, match="`split` must lie in \\[0, 2\\)"):
        uci("toy", 2, tmp_path)
    (d / "index_test_1.txt").unlink()
    with pytest.raises(FileNotFoundError, match="index_test_1.txt"):
        uci("toy", 1, tmp_path)


def test_overlapping_split_is_refused(tmp_path):
    d = _write_set(tmp_path, name="bad")
    train = np.loadtxt(d / "index_train_0.txt", dtype=int)
    np.savetxt(d / "index_test_0.txt", train[:2], fmt="%d")
    with pytest.raises(ValueError, match="both the training and the test"):
        uci("bad", 0, tmp_path)
