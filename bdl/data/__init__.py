"""Data for bdl's experiments: plain numpy arrays, deterministic by seed.

- :mod:`bdl.data.route_choice`: the route-choice travel-time simulator (three routes,
  covariates, heteroscedastic and skewed/heavy-tailed noise, a shifted test condition).
- :mod:`bdl.data.sklearn_sets`: diabetes (regression) and digits (classification) from
  scikit-learn, as standardised random splits.
"""

from bdl.data import route_choice, sklearn_sets
from bdl.data.route_choice import RouteDays
from bdl.data.sklearn_sets import Split

__all__ = ["RouteDays", "Split", "route_choice", "sklearn_sets"]
