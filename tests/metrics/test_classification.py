"""Classification metrics: accuracy, Brier, ECE and the reliability diagram."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scoringrules as sr

from bdl import Predictive, metrics

N, C = 20_000, 4


def _synthetic(sharpen: float = 1.0, seed: int = 0):
    """Labels drawn from softmax(logits); the predictive reports softmax(sharpen * logits)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, (N, C))
    true = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = (rng.uniform(size=(N, 1)) > np.cumsum(true, -1)).sum(-1)
    return Predictive.categorical(logits=sharpen * logits[None]), labels


def _naive_ece(probs, labels, n_bins):
    conf, hit = probs.max(-1), probs.argmax(-1) == labels
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (conf > lo) & (conf <= hi) if b else (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(hit[inside].mean() - conf[inside].mean())
    return total


def test_calibrated_classifier_has_small_ece():
    pred, y = _synthetic()
    assert float(metrics.ece(pred, y)) < 0.02


def test_overconfident_classifier_has_large_ece():
    pred, y = _synthetic(sharpen=3.0)
    assert float(metrics.ece(pred, y)) > 0.1


@pytest.mark.parametrize("n_bins", [1, 5, 15])
def test_ece_matches_naive_binning(n_bins):
    rng = np.random.default_rng(n_bins)
    probs = rng.dirichlet(np.ones(3) * 0.7, 500).astype(np.float32)
    labels = rng.integers(0, 3, 500)
    got = metrics.ece(Predictive.categorical(probs[None]), labels, n_bins=n_bins)
    np.testing.assert_allclose(got, _naive_ece(probs, labels, n_bins), rtol=1e-4, atol=1e-6)


def test_reliability_diagram_data():
    probs = jnp.array([[0.9, 0.1], [0.85, 0.15], [0.3, 0.7], [0.45, 0.55]])
    y = jnp.array([0, 1, 1, 1])
    diagram = metrics.reliability_diagram(Predictive.categorical(probs[None]), y, n_bins=5)
    assert all(a.shape == (5,) for a in diagram[:3]) and diagram.edges.shape == (6,)
    np.testing.assert_allclose(diagram.edges, np.linspace(0.0, 1.0, 6), atol=1e-7)
    np.testing.assert_allclose(diagram.count, [0, 0, 1, 1, 2])
    np.testing.assert_allclose(diagram.confidence[2:], [0.55, 0.7, 0.875], rtol=1e-6)
    np.testing.assert_allclose(diagram.accuracy[2:], [1.0, 1.0, 0.5])
    assert np.isnan(diagram.confidence[:2]).all() and np.isnan(diagram.accuracy[:2]).all()


def test_posterior_samples_are_averaged():
    sample_probs = jnp.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # two samples, one input
    pred = Predictive.categorical(sample_probs, weights=jnp.array([0.75, 0.25]))
    np.testing.assert_allclose(metrics.brier(pred, jnp.array([0])), [0.125])
    np.testing.assert_allclose(metrics.accuracy(pred, jnp.array([0])), [1.0])


def test_brier_matches_scoringrules_summed_over_classes():
    rng = np.random.default_rng(1)
    probs, labels = rng.dirichlet(np.ones(C), 30), rng.integers(0, C, 30)
    onehot = np.eye(C)[labels]
    want = sr.brier_score(onehot, probs, backend="numpy").sum(-1)
    got = metrics.brier(Predictive.categorical(probs[None]), labels)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_accuracy_and_nll():
    probs = jnp.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    pred, y = Predictive.categorical(probs[None]), jnp.array([0, 1])
    np.testing.assert_allclose(metrics.accuracy(pred, y), [1.0, 0.0])
    np.testing.assert_allclose(metrics.nll(pred, y), -np.log([0.7, 0.3]), rtol=1e-6)


def test_ece_jits_with_static_bins():
    pred, y = _synthetic()
    jitted = jax.jit(metrics.ece, static_argnames="n_bins")
    np.testing.assert_allclose(jitted(pred, y, n_bins=10), metrics.ece(pred, y, n_bins=10))


def test_classification_input_errors():
    pred = Predictive.categorical(jnp.full((1, 3, 2), 0.5))
    with pytest.raises(ValueError, match="integer class labels"):
        metrics.accuracy(pred, jnp.zeros(3))
    with pytest.raises(ValueError, match="`n_bins`"):
        metrics.ece(pred, jnp.zeros(3, int), n_bins=0)
    with pytest.raises(ValueError, match="classification metric"):
        metrics.brier(Predictive.gaussian(jnp.zeros(3), 1.0), jnp.zeros(3, int))
