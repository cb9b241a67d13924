"""A travel-time simulator for the route-choice example (docs/route-choice.md) made real.

Every morning you leave between 07:30 and 09:00 and must arrive within 30 minutes. Three
routes: city, highway, forest. Four covariates describe the day:

- ``departure``: clock time in hours, uniform on [7.5, 9.0]; rush hour peaks at 08:15
  (``rush = exp(-((departure - 8.25) / 0.25)^2 / 2)`` in [0, 1]);
- ``rain``: a rainy day (0/1, probability 0.3);
- ``construction``: the construction site on the city route is active (0/1, probability 0.3);
- ``parade``: a parade in town (0/1): *rare in training (10%), frequent in the shifted test
  condition (35%)*.

Travel times in minutes (G = Gamma(shape 2, scale theta), t4 = Student-t with 4 dof):

- city: ``16 + 6 rush + 1 construction + 0.5 rain + G``, ``theta = 1 + 1.5 rush +
  1.5 construction`` (heteroscedastic, right-skewed), and on parade days a jam with
  probability 0.3 (``+U(10, 25)``), else ``+U(0, 2)``. The city is usually the fastest route
  *on average*, but on parade and construction days it is a gamble.
- highway: ``25 + 5 rush + 1.5 rain + 0.5 parade + N(0, (0.6 + 0.6 rush + 0.4 rain)^2)``,
  plus a rare accident (probability 0.02, ``+Exp(15)``): reliable, with a heavy right tail.
- forest: ``29 + (0.8 + 3 rain) t4`` on dry days a fair bet; in rain ``+ 6 + 5 cos(2 pi
  (departure - 7.5) / 0.75)`` (mud, and logging trucks at set times): heavy-tailed, very
  noisy, and never worth taking, yet its wavy mean weighs heavily in the MSE.

So the route with the lowest expected time is often not the route most likely to arrive
within 30 minutes: a model that predicts the mean well (low MSE) but not the spread picks the
city on parade days and is late about a third of the time, while a model with honest
per-route uncertainty takes the highway. And the MSE is dominated by errors that do not
change any decision (the forest in rain): a network trained on squared error fits that wavy
mean better than one trained by heteroscedastic likelihood, which spends its effort where the
noise is small. Lower MSE, worse routes: the lesson of docs/route-choice.md on trained
models. Parade days are rare in training, so their uncertainty is largely epistemic.

All functions are deterministic functions of an integer ``seed`` (or a numpy ``Generator``).
Shapes: ``n`` days, 3 routes, ``m`` draws.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

ROUTES: tuple[str, ...] = ("city", "highway", "forest")
FEATURES: tuple[str, ...] = ("departure", "rain", "construction", "parade")
DEADLINE = 30.0  # minutes
TRAIN_PARADE_RATE = 0.10
SHIFT_PARADE_RATE = 0.35
RAIN_RATE = 0.3
CONSTRUCTION_RATE = 0.3
_EARLIEST, _LATEST, _PEAK, _RUSH_WIDTH = 7.5, 9.0, 8.25, 0.25
_JAM_RATE, _JAM_LOW, _JAM_HIGH, _PARADE_SLOW = 0.3, 10.0, 25.0, 2.0
_ACCIDENT_RATE, _ACCIDENT_MEAN = 0.02, 15.0
_FOREST_T_SCALE, _FOREST_T_DOF = 0.8, 4.0
_FOREST_RAIN, _FOREST_WAVE, _FOREST_PERIOD, _FOREST_RAIN_SCALE = 6.0, 5.0, 0.75, 3.0

Covariates = dict[str, np.ndarray]  # name -> [n]


class RouteDays(NamedTuple):
    """Simulated days.

    Attributes:
      x: model inputs ``[n, 4]`` float32: departure scaled to [-1, 1] (07:30 -> -1, 09:00 -> 1),
        rain, construction, parade (0/1).
      y: observed travel times ``[n, 3]`` float32 (minutes) on city, highway, forest.
      covariates: the raw covariates, each ``[n]`` (departure in hours).
    """

    x: np.ndarray
    y: np.ndarray
    covariates: Covariates


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def rush(departure: np.ndarray) -> np.ndarray:
    """Rush-hour intensity in [0, 1] for departure clock times (hours), shape of the input."""
    return np.exp(-0.5 * ((np.asarray(departure) - _PEAK) / _RUSH_WIDTH) ** 2)


def sample_covariates(
    seed: int | np.random.Generator,
    n: int,
    *,
    parade_rate: float = TRAIN_PARADE_RATE,
    rain_rate: float = RAIN_RATE,
    construction_rate: float = CONSTRUCTION_RATE,
) -> Covariates:
    """``n`` days of covariates: ``departure`` (hours) and 0/1 ``rain``, ``construction``,
    ``parade``, each ``[n]`` float64."""
    for name, p in (("parade_rate", parade_rate), ("rain_rate", rain_rate),
                    ("construction_rate", construction_rate)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"`{name}` must lie in [0, 1]; got {p}.")
    if int(n) < 1:
        raise ValueError(f"`n` must be >= 1; got {n}.")
    rng = _rng(seed)
    return {
        "departure": rng.uniform(_EARLIEST, _LATEST, n),
        "rain": (rng.random(n) < rain_rate).astype(float),
        "construction": (rng.random(n) < construction_rate).astype(float),
        "parade": (rng.random(n) < parade_rate).astype(float),
    }


def features(covariates: Covariates) -> np.ndarray:
    """Model inputs ``[n, 4]`` float32 from covariates (see :class:`RouteDays`)."""
    centre, half = (_EARLIEST + _LATEST) / 2, (_LATEST - _EARLIEST) / 2
    dep = (covariates["departure"] - centre) / half
    cols = [dep, covariates["rain"], covariates["construction"], covariates["parade"]]
    return np.stack(cols, axis=-1).astype(np.float32)


def _city_theta(c: Covariates) -> np.ndarray:
    return 1.0 + 1.5 * rush(c["departure"]) + 1.5 * c["construction"]


def _highway_sd(c: Covariates) -> np.ndarray:
    return 0.6 + 0.6 * rush(c["departure"]) + 0.4 * c["rain"]


def _forest_mean(c: Covariates) -> np.ndarray:
    wave = np.cos(2 * np.pi * (c["departure"] - _EARLIEST) / _FOREST_PERIOD)
    return 29.0 + c["rain"] * (_FOREST_RAIN + _FOREST_WAVE * wave)


def _forest_scale(c: Covariates) -> np.ndarray:
    return _FOREST_T_SCALE + _FOREST_RAIN_SCALE * c["rain"]


def travel_times(seed: int | np.random.Generator, covariates: Covariates,
                 num_draws: int | None = None) -> np.ndarray:
    """Travel times given the covariates: ``[n, 3]``, or ``[m, n, 3]`` independent draws per
    day when ``num_draws = m`` (the true predictive distribution of each day)."""
    rng = _rng(seed)
    c = covariates
    n = c["departure"].shape[0]
    shape = (n,) if num_draws is None else (int(num_draws), n)
    r = rush(c["departure"])
    parade = c["parade"].astype(bool)

    jam = rng.random(shape) < _JAM_RATE
    delay = np.where(jam, rng.uniform(_JAM_LOW, _JAM_HIGH, shape),
                     rng.uniform(0.0, _PARADE_SLOW, shape))
    city = (16.0 + 6.0 * r + 1.0 * c["construction"] + 0.5 * c["rain"]
            + rng.gamma(2.0, 1.0, shape) * _city_theta(c) + np.where(parade, delay, 0.0))

    accident = rng.random(shape) < _ACCIDENT_RATE
    highway = (25.0 + 5.0 * r + 1.5 * c["rain"] + 0.5 * c["parade"]
               + _highway_sd(c) * rng.standard_normal(shape)
               + np.where(accident, rng.exponential(_ACCIDENT_MEAN, shape), 0.0))

    forest = (_forest_mean(c)
              + _forest_scale(c) * rng.standard_t(_FOREST_T_DOF, shape))
    return np.stack([city, highway, forest], axis=-1)


def expected_travel_time(covariates: Covariates) -> np.ndarray:
    """The true conditional mean travel time ``[n, 3]`` (minutes), in closed form."""
    c = covariates
    r = rush(c["departure"])
    parade_delay = _JAM_RATE * (_JAM_LOW + _JAM_HIGH) / 2 + (1 - _JAM_RATE) * _PARADE_SLOW / 2
    city = (16.0 + 6.0 * r + c["construction"] + 0.5 * c["rain"] + 2.0 * _city_theta(c)
            + c["parade"] * parade_delay)
    highway = (25.0 + 5.0 * r + 1.5 * c["rain"] + 0.5 * c["parade"]
               + _ACCIDENT_RATE * _ACCIDENT_MEAN)
    forest = _forest_mean(c)
    return np.stack([city, highway, forest], axis=-1)


def simulate(seed: int | np.random.Generator, n: int, *,
             parade_rate: float = TRAIN_PARADE_RATE, rain_rate: float = RAIN_RATE,
             construction_rate: float = CONSTRUCTION_RATE) -> RouteDays:
    """``n`` simulated days: inputs ``x [n, 4]``, travel times ``y [n, 3]``, covariates."""
    rng = _rng(seed)
    cov = sample_covariates(rng, n, parade_rate=parade_rate, rain_rate=rain_rate,
                            construction_rate=construction_rate)
    return RouteDays(features(cov), travel_times(rng, cov).astype(np.float32), cov)


def splits(seed: int, n_train: int, n_test: int, *, train_parade_rate: float = TRAIN_PARADE_RATE,
           shift_parade_rate: float = SHIFT_PARADE_RATE) -> dict[str, RouteDays]:
    """The benchmark's data: ``"train"`` (``n_train`` days, parades rare), ``"test"``
    (``n_test`` days from the training distribution) and ``"shift"`` (``n_test`` days with
    parades at ``shift_parade_rate``). Independent streams of one seed."""
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]
    return {
        "train": simulate(streams[0], n_train, parade_rate=train_parade_rate),
        "test": simulate(streams[1], n_test, parade_rate=train_parade_rate),
        "shift": simulate(streams[2], n_test, parade_rate=shift_parade_rate),
    }


def on_time_probability(seed: int | np.random.Generator, covariates: Covariates,
                        num_draws: int = 2000, deadline: float = DEADLINE) -> np.ndarray:
    """Monte Carlo estimate of the true P(T <= deadline) per day and route, ``[n, 3]``
    (standard error at most ``0.5 / sqrt(num_draws)``)."""
    draws = travel_times(seed, covariates, num_draws)
    return np.mean(draws <= deadline, axis=0)
