"""The route-choice simulator: determinism, shapes, the shift, and the lesson it encodes."""

import numpy as np
import pytest

from bdl.data import route_choice as rc


def test_deterministic_by_seed_and_shapes():
    a, b, c = rc.simulate(3, 50), rc.simulate(3, 50), rc.simulate(4, 50)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)
    assert a.x.shape == (50, len(rc.FEATURES)) and a.y.shape == (50, len(rc.ROUTES))
    assert a.x.dtype == np.float32 and a.y.dtype == np.float32
    assert np.all(np.abs(a.x[:, 0]) <= 1.0)
    s1, s2 = rc.splits(0, 40, 30), rc.splits(0, 40, 30)
    for name in ("train", "test", "shift"):
        np.testing.assert_array_equal(s1[name].y, s2[name].y)


def test_shift_makes_parades_frequent():
    d = rc.splits(0, 4000, 4000)
    rate = {k: d[k].covariates["parade"].mean() for k in d}
    assert abs(rate["train"] - rc.TRAIN_PARADE_RATE) < 0.015
    assert abs(rate["test"] - rc.TRAIN_PARADE_RATE) < 0.015
    assert abs(rate["shift"] - rc.SHIFT_PARADE_RATE) < 0.03
    # and the shift changes the outcome distribution: the city is slower on average
    assert d["shift"].y[:, 0].mean() > d["test"].y[:, 0].mean() + 1.0


def test_closed_form_mean_matches_draws():
    cov = rc.sample_covariates(1, 200)
    draws = rc.travel_times(2, cov, 4000)  # [m, n, 3]
    assert draws.shape == (4000, 200, 3)
    err = draws.mean(0) - rc.expected_travel_time(cov)
    # standard error of a 4000-draw mean is below 0.25 min even for the city's parade jams
    assert np.abs(err).mean() < 0.05 and np.abs(err).max() < 1.2


def test_city_skewed_and_noise_heteroscedastic():
    cov = rc.sample_covariates(0, 1)
    quiet = {**cov, "departure": np.array([7.5]), "construction": np.array([0.0]),
             "parade": np.array([0.0]), "rain": np.array([0.0])}
    busy = {**quiet, "departure": np.array([8.25]), "construction": np.array([1.0])}
    q, b = rc.travel_times(0, quiet, 20000)[:, 0], rc.travel_times(0, busy, 20000)[:, 0]
    assert b[:, 0].std() > 2.5 * q[:, 0].std()  # heteroscedastic
    centred = b[:, 0] - b[:, 0].mean()
    assert np.mean(centred**3) / centred.std() ** 3 > 0.8  # right-skewed


def test_lowest_mean_is_not_most_reliable_on_parade_days():
    """The lesson: on parade days the city is fastest on average but less often on time."""
    cov = {"departure": np.array([7.6]), "rain": np.array([0.0]),
           "construction": np.array([0.0]), "parade": np.array([1.0])}
    mean = rc.expected_travel_time(cov)[0]
    p = rc.on_time_probability(0, cov, 20000)[0]
    assert mean[0] < mean[1]  # city faster on average than the highway ...
    assert p[0] < p[1] - 0.2  # ... but much less likely to arrive within 30 minutes


@pytest.mark.parametrize("bad", [{"parade_rate": 1.5}, {"rain_rate": -0.1}])
def test_rates_are_checked(bad):
    with pytest.raises(ValueError, match="rate"):
        rc.simulate(0, 10, **bad)
