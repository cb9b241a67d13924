"""Expected utility: closed forms against Monte Carlo and exact enumeration; Bayes actions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

import bdl
from bdl import decisions

SETTINGS = settings(max_examples=10, deadline=None)
MC_SETTINGS = settings(max_examples=4, deadline=None)  # each example draws N_MC per element
N_MC = 50_000
SIGMAS = 5.0  # Monte Carlo tolerance: 5 standard errors (per-element false alarm ~6e-7)


def _mixture(seed, batch=(4, 3), components=3):
    rng = np.random.default_rng(seed)
    shape = (components, *batch)
    loc = rng.normal(25.0, 6.0, shape)
    scale = rng.uniform(0.5, 6.0, shape)
    weights = rng.dirichlet(np.ones(components))
    return bdl.Predictive.gaussian_mixture(loc, scale, weights)


def _mc_mean_and_se(pred, u, key):
    values = u(pred.sample(key, N_MC))  # [n, ..., K or A]
    return jnp.mean(values, axis=0), jnp.std(values, axis=0) / np.sqrt(N_MC)


@MC_SETTINGS
@given(seed=st.integers(0, 2**31 - 1), t=st.floats(10.0, 40.0), below=st.booleans())
def test_threshold_closed_form_equals_monte_carlo(seed, t, below):
    pred, u = _mixture(seed), decisions.threshold(t, below=below)
    exact = decisions.expected_utility(pred, u)
    np.testing.assert_allclose(exact, jnp.where(below, pred.cdf(t), 1 - pred.cdf(t)), atol=1e-6)
    mc, _ = _mc_mean_and_se(pred, u, jax.random.key(seed))
    # the se of a frequency is at most 0.5 / sqrt(n); use that bound (p near 0 or 1 included)
    assert np.all(np.abs(exact - mc) <= SIGMAS * 0.5 / np.sqrt(N_MC))


@MC_SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(-3.0, 3.0, allow_subnormal=False),
    offset=st.floats(-5.0, 5.0),
)
def test_linear_closed_form_equals_monte_carlo(seed, scale, offset):
    pred, u = _mixture(seed), decisions.linear(scale, offset)
    exact = decisions.expected_utility(pred, u)
    np.testing.assert_allclose(exact, offset + scale * pred.mean(), rtol=1e-6, atol=1e-5)
    mc, se = _mc_mean_and_se(pred, u, jax.random.key(seed))
    assert np.all(np.abs(exact - mc) <= SIGMAS * se + 1e-4 * (1 + np.abs(exact)))


@MC_SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    under=st.floats(0.1, 10.0),
    over=st.floats(0.1, 10.0),
)
def test_asymmetric_closed_form_equals_monte_carlo(seed, under, over):
    pred = _mixture(seed, batch=(5,))
    u = decisions.asymmetric(jnp.linspace(5.0, 45.0, 9), under=under, over=over)
    exact = decisions.expected_utility(pred, u)
    assert exact.shape == (5, 9)
    mc, se = _mc_mean_and_se(pred, u, jax.random.key(seed))
    assert np.all(np.abs(exact - mc) <= SIGMAS * se + 1e-4 * (1 + np.abs(exact)))


def test_asymmetric_closed_form_equals_quadrature():
    # one Gaussian: E u(a, Y) by a fine Riemann sum over +-10 sd (error << 1e-4)
    mu, s, a = 3.0, 2.0, np.array([-1.0, 2.5, 3.0, 8.0])
    u = decisions.asymmetric(a, under=2.0, over=0.5)
    exact = decisions.expected_utility(bdl.Predictive.gaussian(mu, s), u)
    y = np.linspace(mu - 10 * s, mu + 10 * s, 200_001)
    w = norm.pdf(y, mu, s) * (y[1] - y[0])
    ref = [np.sum(w * -(2.0 * np.maximum(y - ai, 0) + 0.5 * np.maximum(ai - y, 0))) for ai in a]
    np.testing.assert_allclose(exact, ref, rtol=1e-5, atol=1e-4)


@SETTINGS
@given(
    mu=st.floats(-50.0, 50.0),
    sigma=st.floats(0.2, 20.0),
    under=st.floats(0.1, 10.0),
    over=st.floats(0.1, 10.0),
)
def test_newsvendor_bayes_action_is_the_critical_quantile(mu, sigma, under, over):
    step = sigma / 20.0
    grid = mu + step * jnp.arange(-120, 121)  # +-6 sd
    u = decisions.asymmetric(grid, under=under, over=over)
    chosen = float(grid[decisions.choose(bdl.Predictive.gaussian(mu, sigma), u)])
    target = norm.ppf(under / (under + over), mu, sigma)
    assert abs(chosen - target) <= step * 1.001 + 1e-5 * abs(mu)  # grid resolution


def test_newsvendor_bayes_action_on_a_mixture_is_its_quantile():
    pred = _mixture(7, batch=(6,))
    grid = jnp.linspace(-10.0, 60.0, 7001)  # step 0.01
    u = decisions.asymmetric(grid, under=4.0, over=1.0)
    chosen = grid[decisions.choose(pred, u)]
    np.testing.assert_allclose(chosen, pred.quantile(0.8), atol=0.0101)


def test_point_and_samples_are_exact():
    a = jnp.array([10.0, 20.0, 30.0])
    u = decisions.asymmetric(a, under=3.0, over=1.0)
    values = jnp.array([[12.0, 31.0], [25.0, 5.0]])
    eu_point = decisions.expected_utility(bdl.Predictive.point(values), u)
    np.testing.assert_allclose(eu_point, u(values))
    draws = np.random.default_rng(0).normal(20.0, 5.0, (50, 2))
    eu_samples = decisions.expected_utility(bdl.Predictive.from_samples(draws), u)
    ref = np.mean(
        -(3.0 * np.maximum(draws[..., None] - a, 0) + np.maximum(a - draws[..., None], 0)), 0
    )
    np.testing.assert_allclose(eu_samples, ref, rtol=1e-5)
    # the threshold closed form (empirical CDF) agrees with enumeration
    thr = decisions.threshold(20.0)
    np.testing.assert_allclose(
        decisions.expected_utility(bdl.Predictive.from_samples(draws), thr),
        np.mean(draws <= 20.0, axis=0),
        atol=1e-6,
    )


def test_table_is_probs_times_table_and_matches_enumeration():
    probs = jax.nn.softmax(jax.random.normal(jax.random.key(1), (5, 4, 3)), axis=-1)
    pred = bdl.Predictive.categorical(probs)
    matrix = jnp.array([[1.0, -2.0, 0.0], [0.0, 1.0, -1.0]])
    u = decisions.table(matrix)
    eu = decisions.expected_utility(pred, u)
    np.testing.assert_allclose(eu, pred.probs() @ matrix.T, rtol=1e-6)
    enumerated = decisions.custom(lambda a, y: matrix[a, y], actions=jnp.arange(2))
    np.testing.assert_allclose(decisions.expected_utility(pred, enumerated), eu, rtol=1e-6)


@SETTINGS
@given(
    logits=st.lists(st.floats(-4.0, 4.0), min_size=4, max_size=4),  # one shape: one compile
    abstain_cost=st.floats(0.0, 1.0),
)
def test_selective_abstains_below_one_minus_cost(logits, abstain_cost):
    probs = jax.nn.softmax(jnp.asarray(logits))
    pred = bdl.Predictive.categorical(probs[None, None])  # [S=1, batch=1, C]
    c = len(logits)
    action = int(decisions.choose(pred, decisions.selective(c, abstain_cost))[0])
    p_max = float(jnp.max(probs))
    if abs(p_max - (1.0 - abstain_cost)) < 1e-5:
        return  # a tie: either is optimal
    if p_max < 1.0 - abstain_cost:
        assert action == c
    else:
        assert action == int(jnp.argmax(probs))


def test_custom_selection_needs_a_key_for_a_mixture_and_then_matches():
    pred = _mixture(3)
    u = decisions.custom(lambda y: (y <= 27.0).astype(jnp.float32), name="on time")
    with pytest.raises(ValueError, match="`key` is required"):
        decisions.expected_utility(pred, u)
    mc = decisions.expected_utility(pred, u, key=jax.random.key(0), num_samples=N_MC)
    assert np.all(np.abs(mc - pred.cdf(27.0)) <= SIGMAS * 0.5 / np.sqrt(N_MC))


def test_expected_utility_jits_and_traces_once():
    u = decisions.asymmetric(jnp.linspace(0.0, 50.0, 11), under=2.0)
    traces = []

    @jax.jit
    def f(pred):
        traces.append(1)
        return decisions.expected_utility(pred, u)

    pred = _mixture(0)
    np.testing.assert_allclose(f(pred), decisions.expected_utility(pred, u), rtol=1e-6)
    f(_mixture(1))
    assert len(traces) == 1


def test_get_by_name_and_unknown_name():
    assert decisions.get("threshold", 30.0).name == "1[y <= 30]"
    with pytest.raises(ValueError, match="threshold.*linear.*asymmetric"):
        decisions.get("treshold", 30.0)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: decisions.threshold(jnp.nan), "`t`"),
        (lambda: decisions.linear(scale=jnp.inf), "`scale`"),
        (lambda: decisions.asymmetric(jnp.ones((2, 2))), "`actions`"),
        (lambda: decisions.asymmetric(jnp.arange(3.0), under=-1.0), "`under`"),
        (lambda: decisions.asymmetric(jnp.arange(3.0), under=0.0, over=0.0), "both be zero"),
        (lambda: decisions.table(jnp.ones(3)), "`matrix`"),
        (lambda: decisions.selective(3, 1.5), "`abstain_cost`"),
        (lambda: decisions.selective(0, 0.1), "`num_classes`"),
    ],
)
def test_bad_utility_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_expected_utility_inputs_raise():
    u = decisions.threshold(30.0)
    with pytest.raises(TypeError, match="`pred`"):
        decisions.expected_utility(jnp.ones(3), u)
    with pytest.raises(TypeError, match="`u`"):
        decisions.expected_utility(bdl.Predictive.point(jnp.ones(3)), lambda y: y)
    with pytest.raises(ValueError, match="`pred` has batch shape"):
        decisions.expected_utility(bdl.Predictive.gaussian(25.0, 8.0), decisions.select(u))
    with pytest.raises(TypeError, match="`fn`"):
        decisions.custom(3.0)
    with pytest.raises(ValueError, match="columns"):
        probs = jnp.full((1, 2, 3), 1 / 3)
        decisions.expected_utility(bdl.Predictive.categorical(probs), decisions.table(jnp.eye(2)))


def test_average_over_draws_in_chunks_matches_the_direct_mean(monkeypatch):
    draws = jax.random.normal(jax.random.key(2), (103, 4)) * 5.0 + 20.0
    u = decisions.asymmetric(jnp.linspace(10.0, 30.0, 5), under=2.0)
    direct = jnp.mean(u(draws), axis=0)
    monkeypatch.setattr("bdl.decisions._expected._MAX_ELEMENTS", 4 * 5 * 10)  # chunks of 10
    chunked = decisions.expected_utility(bdl.Predictive.from_samples(draws), u)
    np.testing.assert_allclose(chunked, direct, rtol=1e-5)
