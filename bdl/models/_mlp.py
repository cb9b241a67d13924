"""Multi-layer perceptron (Flax NNX), the default model of bdl's experiments."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from bdl.models._network import Network, nnx_factory_network

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "elu": jax.nn.elu,
}


class MLPModule(nnx.Module):
    """Dense layers ``layers_0 .. layers_{L-1}`` with an activation between them.

    Input ``[N, in_features]``, output ``[N, out]``. The last layer is plain linear: it is
    the "last layer" of last-layer Laplace/VI.
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out: int,
        activation: str = "relu",
        *,
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
    ):
        sizes = [in_features, *hidden, out]
        self.layers = nnx.List(
            [nnx.Linear(a, b, param_dtype=param_dtype, rngs=rngs)
             for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        )
        self.activation = activation

    def __call__(self, x: jax.Array) -> jax.Array:
        act = _ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x)


@dataclasses.dataclass(frozen=True)
class MLP:
    """Specification of an MLP; the input size is taken from the data at fit time.

    Args:
      hidden: widths of the hidden layers, e.g. ``(50, 50)``.
      out: output size (1 for scalar regression with homoscedastic noise, 2 for the
        heteroscedastic mean-and-scale head, C for C classes).
      activation: one of ``relu, tanh, gelu, silu, elu``.
      param_dtype: the parameters' dtype: ``"float32"``, ``"float64"`` (needs
        ``jax_enable_x64``), or ``"bfloat16"`` / ``"float16"`` (trained on float32 master
        copies).
    """

    hidden: Sequence[int] = (50,)
    out: int = 1
    activation: str = "relu"
    param_dtype: str = "float32"

    def __post_init__(self):
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {self.activation!r}; choose one of "
                f"{', '.join(map(repr, _ACTIVATIONS))}."
            )
        if self.out < 1 or any(h < 1 for h in self.hidden):
            raise ValueError(f"`hidden` and `out` must be positive; got {self.hidden}, {self.out}.")
        if self.param_dtype not in ("float32", "float64", "bfloat16", "float16"):
            raise ValueError(f"`param_dtype` must be one of float32, float64, bfloat16, "
                             f"float16; got {self.param_dtype!r}.")

    def module(self, in_features: int, *, rngs: nnx.Rngs) -> MLPModule:
        """The NNX module for inputs of ``in_features`` features."""
        return MLPModule(in_features, tuple(self.hidden), self.out, self.activation, rngs=rngs,
                         param_dtype=jnp.dtype(self.param_dtype))

    def network(self, x_example: jax.Array) -> Network:
        """The functional ``Network`` for inputs shaped like ``x_example`` ``[N, d]``."""
        if jnp.ndim(x_example) != 2:
            raise ValueError(f"MLP expects `x` of shape [N, d]; got {jnp.shape(x_example)}.")
        d = int(jnp.shape(x_example)[-1])
        return nnx_factory_network(lambda rngs: self.module(d, rngs=rngs))
