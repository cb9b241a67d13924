"""Conformance of every registered method (``bdl.available()``) to the one posterior contract.

Each case (method x model kind x dtype x likelihood, see ``_cases.py``) is checked for:

- fit -> predict -> ``bdl.metrics.evaluate`` (all finite) -> a per-example decision
  (``decisions.act``: ``choose`` and ``decisions.evaluate``, all finite);
- predict's batch shape (``[N]`` regression, probs ``[N, C]``) and dtype;
- no NaN/inf in the posterior's arrays;
- ``approximators.save``/``load`` gives the same predictive;
- ``approximators.fit_seeds(..., keys=keys)[i]`` equals ``fit(..., key=keys[i])``;
- determinism (same key, same predictive, bit for bit) and different keys, different
  predictive (every case's model is re-initialisable, so every method's result depends on
  its key through the initialisation at least).

The default run takes a covering subset (three cases per method: each model kind, each dtype
and each likelihood at least once per method, pairwise across the factors); the full product
is marked ``slow``. The checks that cost extra fits (``fit_seeds`` with two keys, and with it
different keys; the determinism refit) run by default on one covering case per method. Fits are shared between the checks of a case (memoised, errors included),
so a failing fit fails each of its checks with the same error without refitting.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import bdl
from tests.conformance import _cases
from tests.conformance._cases import Case

pytestmark = [
    pytest.mark.filterwarnings("ignore::bdl.NotConvergedWarning"),
    pytest.mark.filterwarnings("ignore::bdl.DiagnosticsWarning"),
]

_COVERING = set(_cases.covering_design())
CASES = [pytest.param(c, id=c.id, marks=() if c in _COVERING else pytest.mark.slow)
         for c in _cases.full_product()]


def _once_per_method(offset: int) -> list:
    """The full product, of which ONE covering case per method runs by default (method m's
    row ``(m + offset) % 3``, so the model kind, dtype and likelihood vary across methods); for
    the checks that cost extra fits per case (the 2-seed ``fit_seeds``, a refit), to keep the
    default run within its time budget. The other cases are ``slow``."""
    rows = len(_cases.MODELS)
    chosen = {_cases.covering_design()[m * rows + (m + offset) % rows]
              for m in range(len(_cases.METHODS))}
    return [pytest.param(c, id=c.id, marks=() if c in chosen else pytest.mark.slow)
            for c in _cases.full_product()]


CASES_SEEDS = _once_per_method(1)
CASES_REFIT = _once_per_method(0)

SEED_KEYS = (0, 1)  # fit_seeds gets keys [key(0), key(1)]; the single fits use key(1)
FIT_KEY = 1
PREDICT_KEY = 7


# --------------------------------------------------------------------------- shared fits

_MEMO: dict = {}


def _memo(name, case, compute):
    """Compute once per (name, case); an exception is remembered and raised again."""
    k = (name, case)
    if k not in _MEMO:
        try:
            _MEMO[k] = (True, compute())
        except Exception as e:  # noqa: BLE001 - re-raised below, in every check of the case
            _MEMO[k] = (False, e)
    ok, value = _MEMO[k]
    if not ok:
        raise value
    return value


def _fit_fresh(case: Case, seed: int):
    x, y, _, _ = _cases.data(case)
    return bdl.fit(case.method, _cases.model(case), _cases.likelihood(case), (x, y),
                   key=jax.random.key(seed), **_cases.fast_options(case.method))


def _fit(case: Case):
    return _memo("fit", case, lambda: _fit_fresh(case, FIT_KEY))


def _fit_seeds(case: Case):
    def compute():
        x, y, _, _ = _cases.data(case)
        keys = jax.random.wrap_key_data(
            np.stack([jax.random.key_data(jax.random.key(s)) for s in SEED_KEYS]))
        return bdl.approximators.fit_seeds(
            case.method, _cases.model(case), _cases.likelihood(case), (x, y), keys=keys,
            **_cases.fast_options(case.method))

    return _memo("fit_seeds", case, compute)


def _predict(post, case: Case):
    _, _, xt, _ = _cases.data(case)
    return post.predict(xt, key=jax.random.key(PREDICT_KEY))


def _summary(pred) -> dict[str, np.ndarray]:
    """The predictive's numbers that must agree between two equal posteriors."""
    if pred.is_classification:
        return {"probs": np.asarray(pred.probs())}
    return {"mean": np.asarray(pred.mean()), "variance": np.asarray(pred.variance())}


# (rtol, atol) of "equal predictives" by the posterior's parameter dtype: "stored" for a
# save/load round trip (the same numbers, up to the order of operations), "float" for another
# program computing the same posterior (fit_seeds vmaps the seeds: rounding differs and grows
# over the training steps)
_TOL = {"stored": {np.float32: (1e-6, 1e-7), np.float64: (1e-12, 1e-14)},
        "float": {np.float32: (2e-4, 2e-6), np.float64: (1e-9, 1e-12)}}


def _assert_same_predictive(a, b, case: Case, *, tol: str | None, what: str):
    """The predictives of ``a`` and ``b`` on the test inputs (same predict key) agree:
    bit for bit when ``tol`` is None, else to ``_TOL[tol]``."""
    sa, sb = _summary(_predict(a, case)), _summary(_predict(b, case))
    for name in sa:
        if tol is None:
            np.testing.assert_array_equal(sb[name], sa[name], err_msg=f"{what}: {name}")
        else:
            f64 = sa[name].dtype == np.float64 and _param_dtype(a) == np.float64
            rtol, atol = _TOL[tol][np.float64 if f64 else np.float32]
            np.testing.assert_allclose(sb[name], sa[name], rtol=rtol, atol=atol,
                                       err_msg=f"{what}: {name}")


def _param_dtype(post):
    dtypes = {np.dtype(a.dtype) for a in _cases.posterior_arrays(post)}
    return np.float64 if dtypes == {np.dtype(np.float64)} else np.float32


def _decision(case: Case):
    """A per-example decision: act iff P(y > 0) > 0.3 (regression), iff P(class 0) > 0.3."""
    outcome = (bdl.decisions.event(0) if case.classification
               else bdl.decisions.threshold(0.0, below=False))
    return bdl.decisions.act(outcome, cost=0.3)


# --------------------------------------------------------------------------- the checks


@pytest.mark.parametrize("case", CASES)
def test_fit_predict_evaluate_decide(case: Case):
    with case.precision():
        _, _, xt, yt = _cases.data(case)
        pred = _predict(_fit(case), case)
        assert isinstance(pred, bdl.Predictive)
        metrics = bdl.metrics.evaluate(pred, yt)
        assert metrics, "evaluate returned no metrics"
        bad = {k: v for k, v in metrics.items() if not np.isfinite(v)}
        assert not bad, f"non-finite metrics: {bad}"

        u = _decision(case)
        eu = np.asarray(bdl.decisions.expected_utility(pred, u))
        assert eu.shape == (len(xt), 2) and np.all(np.isfinite(eu)), eu
        action = np.asarray(bdl.decisions.choose(pred, u))
        assert action.shape == (len(xt),) and set(np.unique(action)) <= {0, 1}, action
        scores = bdl.decisions.evaluate(pred, yt, u, key=jax.random.key(3))
        bad = {k: v for k, v in scores.items() if not np.isfinite(v)}
        assert not bad, f"non-finite decision scores: {bad}"
        assert scores["regret"] >= -1e-6, scores


@pytest.mark.parametrize("case", CASES)
def test_predict_batch_shape_and_dtype(case: Case):
    with case.precision():
        _, _, xt, _ = _cases.data(case)
        pred = _predict(_fit(case), case)
        n = len(xt)
        assert pred.is_classification == case.classification
        assert tuple(pred.batch_shape) == (n,), pred.batch_shape
        if case.classification:
            probs = np.asarray(pred.probs())
            assert probs.shape == (n, _cases.NUM_CLASSES), probs.shape
            np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
            assert np.all(probs >= 0)
        else:
            mean, var = np.asarray(pred.mean()), np.asarray(pred.variance())
            assert mean.shape == var.shape == (n,), (mean.shape, var.shape)
            assert np.all(var > 0), var
            # the predictive computes in the data's dtype (float64 data: float64 numbers)
            assert mean.dtype == xt.dtype, (mean.dtype, xt.dtype)


@pytest.mark.parametrize("case", CASES)
def test_posterior_arrays_are_finite(case: Case):
    with case.precision():
        arrays = _cases.posterior_arrays(_fit(case))
        assert arrays, "the posterior holds no floating arrays"
        bad = [a.shape for a in arrays if not np.all(np.isfinite(np.asarray(a)))]
        assert not bad, f"non-finite arrays of shapes {bad}"


@pytest.mark.parametrize("case", CASES)
def test_save_load_gives_the_same_predictive(case: Case, tmp_path):
    with case.precision():
        post = _fit(case)
        path = bdl.approximators.save(post, tmp_path / "post")
        back = bdl.approximators.load(path, _cases.model(case), _cases.likelihood(case))
        _assert_same_predictive(post, back, case, tol="stored", what="loaded")


@pytest.mark.parametrize("case", CASES_SEEDS)
def test_fit_seeds_matches_fit(case: Case):
    with case.precision():
        posts = _fit_seeds(case)
        assert len(posts) == len(SEED_KEYS)
        i = SEED_KEYS.index(FIT_KEY)  # a non-zero index: the seed order must be kept
        _assert_same_predictive(_fit(case), posts[i], case, tol="float",
                                what=f"fit_seeds[{i}] vs fit")


@pytest.mark.parametrize("case", CASES_SEEDS)
def test_different_keys_give_different_posteriors(case: Case):
    with case.precision():
        a, b = _fit_seeds(case)
        sa, sb = _summary(_predict(a, case)), _summary(_predict(b, case))
        assert any(not np.allclose(sa[k], sb[k], rtol=1e-6, atol=0) for k in sa), \
            "keys 0 and 1 gave the same predictive"


@pytest.mark.parametrize("case", CASES_REFIT)
def test_same_key_gives_the_same_posterior(case: Case):
    with case.precision():
        _assert_same_predictive(_fit(case), _fit_fresh(case, FIT_KEY), case, tol=None,
                                what="refit with the same key")
