"""Isotropic Gaussian prior over a parameter pytree, optionally one precision per layer.

The log-prior is what turns MAP training into weight decay that means something: with
precision ``lambda`` the MAP objective is ``sum_i log p(y_i | x_i, w) - lambda/2 ||w||^2``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np

from bdl._validation import check_positive
from bdl.models import Params


class Prior(Protocol):
    def log_prob(self, params: Params) -> jax.Array: ...

    def precision_tree(self, params: Params) -> Params: ...


class IsotropicGaussian:
    """w ~ N(0, 1/precision I), independently for every parameter.

    Args:
      precision: a positive float for all parameters, or a mapping from the top-level key of
        the parameter tree (a layer name, e.g. ``"layers"`` subtree keys flattened as paths
        like ``"layers/0"``) to its precision. Paths not in the mapping use ``default``.
      default: precision for parameters whose path is not in a ``precision`` mapping.
    """

    def __init__(self, precision: float | Mapping[str, float] = 1.0, *, default: float = 1.0):
        if isinstance(precision, Mapping):
            for name, value in precision.items():
                check_positive(f"precision[{name!r}]", value)
            self.precision = dict(precision)
        else:
            check_positive("precision", precision)
            self.precision = float(precision)
        check_positive("default", default)
        self.default = float(default)

    def precision_tree(self, params: Params) -> Params:
        """A pytree like ``params`` holding each leaf's (scalar) precision."""
        if not isinstance(self.precision, dict):
            return jax.tree.map(lambda _: jnp.float32(self.precision), params)
        known = self.precision

        def lookup(path, _):
            name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
            for prefix, value in known.items():
                if name == prefix or name.startswith(prefix + "/"):
                    return jnp.float32(value)
            return jnp.float32(self.default)

        return jax.tree_util.tree_map_with_path(lookup, params)

    def log_prob(self, params: Params) -> jax.Array:
        """log N(params; 0, 1/precision), normalising constant included (scalar)."""
        prec = self.precision_tree(params)

        def leaf(w, lam):
            return 0.5 * w.size * (jnp.log(lam) - np.log(2 * np.pi)) - 0.5 * lam * jnp.sum(w**2)

        return sum(jax.tree.leaves(jax.tree.map(leaf, params, prec)), jnp.float32(0.0))

    def __repr__(self) -> str:
        return f"IsotropicGaussian(precision={self.precision})"

    def _config(self) -> tuple:
        prec = self.precision
        return (tuple(sorted(prec.items())) if isinstance(prec, dict) else prec, self.default)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IsotropicGaussian) and self._config() == other._config()

    def __hash__(self) -> int:
        return hash((IsotropicGaussian, self._config()))
