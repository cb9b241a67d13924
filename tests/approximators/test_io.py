"""``bdl.approximators.save`` / ``load`` for every posterior kind: the loaded posterior predicts
as the original does (same key), keeps its hyper-parameters, info and sampler diagnostics;
the particle-only format of earlier versions still loads; bad directories fail clearly."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from flax import serialization

import bdl
from bdl.approximators import (
    LaplacePosterior,
    ParticlePosterior,
    SamplePosterior,
    VIPosterior,
    load,
    save,
)

MODEL = bdl.models.MLP((8,), activation="tanh")
LIK = bdl.likelihoods.Gaussian()


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (np.sin(x[:, 0]) - 0.5 * x[:, 1] + 0.1 * rng.normal(size=n)).astype(np.float32)
    return x, y


X, Y = _data()
XT = np.random.default_rng(1).normal(size=(7, 2)).astype(np.float32)


def _roundtrip(post, tmp_path, model=MODEL, lik=LIK):
    path = save(post, tmp_path / "post")
    return load(path, model, lik)


def _same_predictive(a, b, x=XT, **kwargs):
    k = jax.random.key(3)
    pa, pb = a.predict(x, key=k, **kwargs), b.predict(x, key=k, **kwargs)
    if pa.is_classification:
        np.testing.assert_allclose(pb.probs(), pa.probs(), rtol=1e-6, atol=1e-7)
        return
    np.testing.assert_allclose(pb.mean(), pa.mean(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(pb.variance(), pa.variance(), rtol=1e-6, atol=1e-7)


def _assert_same(a, b, where="info"):
    """Equal nested data; NaN equals NaN; numpy arrays by value."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            _assert_same(u, v, f"{where}[{i}]")
    elif isinstance(a, (np.ndarray, jax.Array)) or isinstance(b, np.ndarray):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a), err_msg=where)
    elif isinstance(a, float):
        assert (np.isnan(a) and np.isnan(b)) or a == b, where
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def map_post():
    return bdl.fit("map", MODEL, LIK, (X, Y), key=jax.random.key(0), epochs=30,
                   learning_rate=1e-2)


def test_map_and_ensemble(map_post, tmp_path):
    back = _roundtrip(map_post, tmp_path / "map")
    assert type(back) is ParticlePosterior and back.method == "map"
    _same_predictive(map_post, back)
    _assert_same(map_post.info, back.info)

    ens = bdl.fit("ensemble", MODEL, LIK, (X, Y), key=jax.random.key(1), epochs=5,
                  num_members=3, random_prior_scale=0.5)
    back = _roundtrip(ens, tmp_path / "ens")
    assert back.num_particles == 3 and back.info["random_prior_scale"] == 0.5
    _same_predictive(ens, back)


@pytest.mark.parametrize("subset", ["last_layer", "all"])
@pytest.mark.parametrize("hessian", ["kfac", "diag", "full"])
def test_laplace(map_post, tmp_path, hessian, subset):
    post = bdl.fit("laplace", MODEL, LIK, (X, Y), key=jax.random.key(1), hessian=hessian,
                   subset=subset, map_posterior=map_post, tune_steps=5)
    back = _roundtrip(post, tmp_path)
    assert isinstance(back, LaplacePosterior)
    assert back.hessian == hessian and back.subnet.subset == subset
    assert back.subnet.num_params == post.subnet.num_params
    np.testing.assert_allclose(back.prior_precision, post.prior_precision, rtol=1e-6)
    assert back.noise_scale == pytest.approx(post.noise_scale, rel=1e-6)
    _same_predictive(post, back)
    _same_predictive(post, back, predictive="mc", num_samples=8)
    np.testing.assert_allclose(back.log_marginal_likelihood(prior_precision=2.0),
                               post.log_marginal_likelihood(prior_precision=2.0), rtol=1e-5)
    _assert_same(post.info, back.info)


def test_laplace_classification_layerwise(tmp_path):
    y = (X[:, 0] > 0).astype(np.int32) + (X[:, 1] > 0.5).astype(np.int32)
    model, lik = bdl.models.MLP((8,), out=3), bdl.likelihoods.Categorical()
    post = bdl.fit("laplace", model, lik, (X, y), key=jax.random.key(0), epochs=10,
                   subset="all", hessian="kfac", prior_structure="layerwise", tune_steps=5)
    back = _roundtrip(post, tmp_path, model, lik)
    assert back.noise_scale is None and np.shape(back.prior_precision) == (2,)
    np.testing.assert_allclose(back.prior_precision, post.prior_precision, rtol=1e-6)
    _same_predictive(post, back)
    _same_predictive(post, back, link_approx="mc", num_samples=8)


@pytest.mark.parametrize("subset", ["all", "last_layer"])
def test_vi(tmp_path, subset):
    post = bdl.fit("vi", MODEL, LIK, (X, Y), key=jax.random.key(0), epochs=3, subset=subset)
    back = _roundtrip(post, tmp_path)
    assert isinstance(back, VIPosterior) and back.path == post.path
    _same_predictive(post, back, num_samples=8)
    _assert_same(post.info, back.info)


@pytest.mark.parametrize("method, options", [
    ("sgld", dict(step_size=1e-4, num_burnin=10, thinning=1)),
    ("nuts", dict(num_warmup=10)),
])
def test_samplers(tmp_path, method, options):
    post = bdl.fit(method, MODEL, LIK, (X, Y), key=jax.random.key(0), num_chains=2,
                   num_samples=5, **options)
    back = _roundtrip(post, tmp_path)
    assert isinstance(back, SamplePosterior) and back.method == method
    assert back.num_chains == 2 and back.num_particles == 10
    _same_predictive(post, back)
    _assert_same(post.diagnostics, back.diagnostics, "diagnostics")
    _assert_same(post.info, back.info)
    assert back.summary() == post.summary()


def test_unstorable_info_is_dropped_and_named(map_post, tmp_path):
    post = dataclasses.replace(map_post, info={**map_post.info, "fn": len,
                                               "nested": {"ok": 1.5, "bad": object()},
                                               "key": jax.random.key(0)})
    back = _roundtrip(post, tmp_path)
    assert "fn" not in back.info and "key" not in back.info
    assert back.info["nested"] == {"ok": 1.5}
    dropped = json.loads((tmp_path / "post" / "meta.json").read_text())["dropped_info"]
    assert len(dropped) == 3 and any("'fn'" in d for d in dropped)
    assert any("'bad'" in d for d in dropped)


def test_particle_format_v1_still_loads(map_post, tmp_path):
    path = tmp_path / "v1"
    path.mkdir()
    (path / "particles.msgpack").write_bytes(serialization.to_bytes(map_post.particles))
    (path / "meta.json").write_text(json.dumps({
        "format": "bdl-particles-v1", "method": "map", "input_shape": [2],
        "likelihood": repr(LIK), "info": {}}))
    back = load(path, MODEL, LIK)
    assert type(back) is ParticlePosterior
    _same_predictive(map_post, back)


def test_bad_directories(map_post, tmp_path):
    with pytest.raises(FileNotFoundError, match="`path`.*nothing"):
        load(tmp_path / "nothing", MODEL, LIK)
    save(map_post, tmp_path / "post")
    meta = json.loads((tmp_path / "post" / "meta.json").read_text())
    (tmp_path / "post" / "meta.json").write_text(json.dumps({**meta, "format": "other"}))
    with pytest.raises(ValueError, match="`path`.*'other'"):
        load(tmp_path / "post", MODEL, LIK)
    (tmp_path / "post" / "meta.json").write_text(json.dumps({**meta, "kind": "swag"}))
    with pytest.raises(ValueError, match="`path`.*'swag'"):
        load(tmp_path / "post", MODEL, LIK)
    (tmp_path / "post" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="`path`.*different model"):
        load(tmp_path / "post", bdl.models.MLP((4,), activation="tanh"), LIK)
    with pytest.raises(TypeError, match="posterior"):
        save(object(), tmp_path / "x")


def test_load_refuses_another_likelihood(map_post, tmp_path):
    """A Gaussian posterior read back with a Categorical (or another noise model) would
    predict nonsense: load names the mismatch."""
    path = save(map_post, tmp_path / "post")
    with pytest.raises(ValueError, match="`likelihood` Categorical.*Gaussian"):
        load(path, MODEL, bdl.likelihoods.Categorical())
    with pytest.raises(ValueError, match="`likelihood`.*heteroscedastic"):
        load(path, bdl.models.MLP((8,), out=2, activation="tanh"),
             bdl.likelihoods.Gaussian("heteroscedastic"))


def test_posterior_format_v2_still_loads(map_post, tmp_path):
    """v2 kept the particles as a plain state dict and the settings in meta.json."""
    from bdl.approximators._state import as_state_dict, encode

    path = tmp_path / "v2"
    path.mkdir()
    (path / "arrays.msgpack").write_bytes(serialization.msgpack_serialize(
        {"particles": as_state_dict(map_post.particles)}))
    (path / "info.msgpack").write_bytes(serialization.msgpack_serialize(encode({})))
    (path / "meta.json").write_text(json.dumps({
        "format": "bdl-posterior-v2", "kind": "particles", "method": "map",
        "input_shape": [2], "likelihood": repr(LIK), "dropped_info": []}))
    _same_predictive(map_post, load(path, MODEL, LIK))


def test_every_posterior_follows_the_contract(map_post):
    from bdl.approximators import Posterior

    assert isinstance(map_post, Posterior)
    draws = map_post.sample_params(jax.random.key(0), 4)
    assert jax.tree.leaves(draws["net"])[0].shape[0] == 4
    state = map_post.to_state()
    back = type(map_post).from_state(state, method="map", network=map_post.network,
                                     likelihood=LIK, info={}, input_shape=(2,))
    _same_predictive(map_post, back)


def test_posteriors_are_pytrees_of_their_arrays(map_post):
    leaves = jax.tree.leaves(map_post)
    assert leaves and all(hasattr(a, "shape") for a in leaves)
    moved = jax.tree.map(lambda a: a + 0.0, map_post)
    assert type(moved) is type(map_post) and moved.info is map_post.info
    _same_predictive(map_post, moved)
