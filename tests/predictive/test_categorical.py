"""Categorical predictive against numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bdl import Predictive


def _entropy(p):
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=(5, 3)).astype(np.float32)  # [S=5, batch=3, C=4]
    weights = rng.dirichlet(np.ones(5)).astype(np.float32)
    return probs, weights


def test_probs_and_uncertainties_match_numpy(setup):
    probs, w = setup
    pred = Predictive.categorical(probs, weights=w)
    assert pred.is_classification and pred.batch_shape == (3,) and pred.num_samples == 5
    mean = np.einsum("s,sbc->bc", w, probs)
    np.testing.assert_allclose(pred.probs(), mean, rtol=1e-5)
    np.testing.assert_allclose(pred.entropy(), _entropy(mean), rtol=1e-5)
    expected = np.einsum("s,sb->b", w, _entropy(probs))
    np.testing.assert_allclose(pred.expected_entropy(), expected, rtol=1e-5)
    np.testing.assert_allclose(pred.mutual_information(), _entropy(mean) - expected, atol=1e-6)
    assert np.all(np.asarray(pred.mutual_information()) > 0)
    np.testing.assert_array_equal(pred.mode(), mean.argmax(-1))


def test_uniform_weights_by_default(setup):
    probs, _ = setup
    np.testing.assert_allclose(Predictive.categorical(probs).probs(), probs.mean(0), rtol=1e-5)


def test_mutual_information_is_zero_when_samples_agree(setup):
    probs, w = setup
    same = np.broadcast_to(probs[:1], probs.shape)
    pred = Predictive.categorical(same, weights=w)
    np.testing.assert_array_equal(pred.mutual_information(), 0.0)  # clipped, never negative
    np.testing.assert_allclose(pred.entropy(), _entropy(probs[0]), rtol=1e-5)


def test_one_hot_probs_have_zero_entropy():
    pred = Predictive.categorical(jnp.array([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]]))
    np.testing.assert_allclose(pred.expected_entropy(), 0.0)
    np.testing.assert_allclose(pred.entropy(), np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(pred.mutual_information(), np.log(2.0), rtol=1e-6)
    np.testing.assert_array_equal(pred.log_prob(jnp.array([2])), [-np.inf])


def test_log_prob_of_labels(setup):
    probs, w = setup
    pred = Predictive.categorical(probs, weights=w)
    labels = np.array([3, 0, 1])
    mean = np.einsum("s,sbc->bc", w, probs)
    np.testing.assert_allclose(pred.log_prob(labels), np.log(mean[np.arange(3), labels]), rtol=1e-5)
    # labels with a leading axis broadcast against the batch
    many = np.array([[0, 0, 0], [1, 2, 3]])
    want = np.log(np.take_along_axis(mean[None], many[..., None], axis=-1)[..., 0])
    np.testing.assert_allclose(pred.log_prob(many, broadcast=True), want, rtol=1e-5)


def test_logits_equal_softmax_probs(setup):
    probs, w = setup
    logits = np.log(probs) + 3.7  # softmax is shift-invariant
    a = Predictive.categorical(logits=logits, weights=w)
    b = Predictive.categorical(jax.nn.softmax(logits, axis=-1), weights=w)
    for method in ("probs", "entropy", "expected_entropy", "mutual_information"):
        np.testing.assert_allclose(getattr(a, method)(), getattr(b, method)(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a.sample_probs, probs, rtol=1e-5)


def test_sample_frequencies_match_probs(setup, key):
    probs, w = setup
    pred = Predictive.categorical(probs, weights=w)
    labels = pred.sample(key, 20_000)
    assert labels.shape == (20_000, 3)
    freq = np.stack([np.bincount(np.asarray(labels[:, b]), minlength=4) for b in range(3)]) / 20_000
    np.testing.assert_allclose(freq, pred.probs(), atol=0.015)
