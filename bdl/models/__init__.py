"""Models: bdl's MLP and adapters that turn any Flax module into pure functions."""

from bdl.models._mlp import MLP, MLPModule
from bdl.models._network import (
    Network,
    Params,
    as_network,
    nnx_factory_network,
    with_shuffled_init,
)

__all__ = ["MLP", "MLPModule", "Network", "Params", "as_network", "nnx_factory_network",
           "with_shuffled_init"]
