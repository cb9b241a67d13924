"""Data for bdl's experiments: plain numpy arrays, deterministic by seed.

- :mod:`bdl.data.route_choice`: the route-choice travel-time simulator (three routes,
  covariates, heteroscedastic and skewed/heavy-tailed noise, a shifted test condition).
- :mod:`bdl.data.sklearn_sets`: diabetes (regression) and digits (classification) from
  scikit-learn, as standardised random splits.
- :func:`bdl.data.uci`: the five UCI regression sets on the standard 20-split protocol, read
  from a directory (``../shared/data/uci`` in the project checkout); never downloads.
"""

from bdl.data import route_choice, sklearn_sets
from bdl.data.route_choice import RouteDays
from bdl.data.sklearn_sets import Split
from bdl.data.uci import UCISplit, uci, uci_datasets, uci_info

__all__ = [
    "RouteDays",
    "Split",
    "UCISplit",
    "route_choice",
    "sklearn_sets",
    "uci",
    "uci_datasets",
    "uci_info",
]
