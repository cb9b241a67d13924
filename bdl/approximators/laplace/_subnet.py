"""The function a Laplace approximation is over: all weights, or the last layer.

A ``Subnet`` turns the network into ``f(theta, inputs)`` over the parameters the Laplace
approximation covers (``theta``, flattened to ``[D]`` in ``ravel_pytree`` order):

- ``subset="all"``: ``theta`` is every network parameter and ``inputs`` is ``x``.
- ``subset="last_layer"``: ``theta = {"kernel", "bias"}`` of the last dense layer and
  ``inputs = (phi, r)``: the last layer's input features ``phi`` ``[N, d]`` at the MAP and the
  rest of the output ``r = f_map - (phi @ W* + b*)`` (zero unless the model adds something
  after its last layer, e.g. a skip connection). ``f = phi @ W + b + r`` is then exact in
  ``theta``, and everything Laplace needs runs on features instead of the network.

It also knows the layer structure KFAC needs (``tapped``: outputs plus every dense layer's input,
with perturbations added to the dense outputs) and the grouping of parameters into layers for a
per-layer prior precision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from bdl._cache import memo
from bdl.approximators.laplace._dense import (
    DenseLayer,
    check_last_layer_is_output,
    find_dense_layers,
    get_path,
    leaf_paths,
    tapped_apply,
)
from bdl.models import Network, Params


@dataclasses.dataclass(frozen=True, eq=False)
class Subnet:
    """Static description of ``f(theta, inputs)`` (hashed by identity: a jit static argument).

    Attributes:
      subset: ``"all"`` or ``"last_layer"``.
      apply: ``(theta tree, inputs [N, ...]) -> f [N, K]``.
      features: ``(net params, x [N, ...]) -> inputs`` of ``apply``.
      tapped: ``(theta tree, inputs, eps | None) -> (f, dense inputs)``, or None.
      layers: dense layers of ``apply`` in call order (paths inside ``theta``).
      unravel: ``[D] -> theta tree``.
      num_params: D.
      group_index: ``[D]`` int, the layer group of every flat parameter.
      group_names: one name per group (``"layers/0"``, ...).
      kron_perm: ``[D]`` int, for each entry of the KFAC (layer blocks, ``[kernel; bias]``
        row-major) ordering its position in the flat order; None when KFAC is unavailable.
      kron_unavailable: why KFAC is unavailable ("" when it is available).
      last_layer_path: path of the last layer's parameter dict in the network parameters.
    """

    subset: str
    apply: Callable[[Params, Any], jax.Array]
    features: Callable[[Params, jax.Array], Any]
    tapped: Callable[..., tuple[jax.Array, tuple]] | None
    layers: tuple[DenseLayer, ...]
    unravel: Callable[[jax.Array], Params]
    num_params: int
    group_index: np.ndarray
    group_names: tuple[str, ...]
    kron_perm: np.ndarray | None
    kron_unavailable: str
    last_layer_path: tuple = ()

    def theta(self, net_params: Params) -> Params:
        """The covered parameters (a tree) out of the network parameters."""
        if self.subset == "all":
            return net_params
        return get_path(net_params, self.last_layer_path)

    def with_theta(self, net_params: Params, theta: Params) -> Params:
        """Network parameters with the covered part replaced by ``theta``."""
        if self.subset == "all":
            return theta
        return _set_path(net_params, self.last_layer_path, theta)


def build_subnet(network: Network, net_params: Params, x: jax.Array, subset: str) -> Subnet:
    """The ``Subnet`` of ``network`` at ``net_params`` for ``subset``; ``x`` ``[N, ...]`` is an
    example batch (shapes only, plus a few rows for the last-layer check).

    Memoised (``bdl._cache``) on the model's ``forward``, the structure, shapes and dtypes of
    ``net_params`` and ``x`` and ``subset``: a repeated fit gets the same ``Subnet`` (a static
    argument of the compiled programs, hashed by identity), so nothing is compiled again. The
    checks depend on the structure only, so a hit skips them."""
    core = _core(network)
    leaves, treedef = jax.tree.flatten(net_params)
    spec = (treedef, tuple((np.shape(a), str(jnp.result_type(a))) for a in leaves),
            tuple(np.shape(x)[1:]), str(jnp.result_type(x)))
    return memo(("laplace_subnet", core, spec, subset),
                lambda: _build_subnet(core, net_params, x, subset))


def _core(network: Network) -> Network:
    """The parts of ``network`` the subnetwork reads (not ``init``, a fresh closure for an
    NNX instance), one object per model."""
    flags = (network.has_state, network.stochastic)
    return memo(("laplace_core", network.forward, flags),
                lambda: Network(None, network.forward, has_state=flags[0], stochastic=flags[1]))


def _build_subnet(network: Network, net_params: Params, x: jax.Array, subset: str) -> Subnet:
    try:
        layers = find_dense_layers(network, net_params, x[:1])
        layer_error = ""
    except ValueError as err:
        layers, layer_error = (), str(err)
    if subset == "all":
        return _all_weights(network, net_params, layers, layer_error)
    if layer_error:
        raise ValueError(layer_error)
    check_last_layer_is_output(network, layers, net_params, x)
    return _last_layer(network, net_params, layers)


def _all_weights(network: Network, net_params: Params, layers, layer_error: str) -> Subnet:
    flat, unravel = ravel_pytree(net_params)
    groups, names = _groups(net_params, ())
    reason = layer_error or _kron_coverage(net_params, layers)
    tapped = tapped_apply(network, len(layers)) if layers else None
    return Subnet(
        subset="all", apply=network.apply, features=lambda net, x: x,
        tapped=tapped if not reason else None, layers=layers, unravel=unravel,
        num_params=int(flat.size), group_index=groups, group_names=names,
        kron_perm=None if reason else _kron_perm(net_params, layers), kron_unavailable=reason,
    )


def _last_layer(network: Network, net_params: Params, layers) -> Subnet:
    last = layers[-1]
    path = last.path
    theta0 = get_path(net_params, path)
    extra = sorted(set(theta0) - {"kernel", "bias"})
    if extra:
        raise ValueError(f"The last dense layer holds parameters {extra} besides kernel/bias.")
    flat, unravel = ravel_pytree(theta0)
    tapped_net = tapped_apply(network, len(layers))

    def linear(theta, phi):
        out = phi @ theta["kernel"]
        return out + theta["bias"] if "bias" in theta else out

    def features(net, x):
        f, inputs = tapped_net(net, x, None)
        phi = inputs[-1]
        return phi, f - linear(get_path(net, path), phi)

    def apply(theta, inputs):
        phi, rest = inputs
        return linear(theta, phi) + rest

    def tapped(theta, inputs, eps=None):
        f = apply(theta, inputs)
        return (f if eps is None else f + eps[0]), (inputs[0],)

    own = DenseLayer((), last.in_features, last.out_features, last.has_bias, 2)
    name = "/".join(map(str, path))
    return Subnet(
        subset="last_layer", apply=apply, features=features, tapped=tapped, layers=(own,),
        unravel=unravel, num_params=int(flat.size),
        group_index=np.zeros(int(flat.size), np.int32), group_names=(name,),
        kron_perm=_kron_perm(theta0, (own,)), kron_unavailable="", last_layer_path=path,
    )


def _groups(params: Params, prefix: tuple) -> tuple[np.ndarray, tuple[str, ...]]:
    """Layer group of every flat parameter: leaves sharing a parent dict share a group."""
    names: list[str] = []
    index = []
    for path, leaf in zip(leaf_paths(params), jax.tree.leaves(params), strict=True):
        name = "/".join(map(str, prefix + path[:-1])) or "/".join(map(str, path))
        if name not in names:
            names.append(name)
        index.append(np.full(int(np.size(leaf)), names.index(name), np.int32))
    return np.concatenate(index), tuple(names)


def _kron_coverage(params: Params, layers: tuple[DenseLayer, ...]) -> str:
    """Why KFAC cannot cover ``params`` with ``layers`` ("" when it can)."""
    if not layers:
        return ("hessian='kfac' needs dense layers (linen.Dense / nnx.Linear); the model has "
                "none that bdl can see.")
    if any(layer.input_ndim != 2 for layer in layers):
        return ("hessian='kfac' supports dense layers applied to [N, d] inputs only; this model "
                "applies one to higher-rank inputs.")
    covered = {layer.path + (name,) for layer in layers
               for name in (("kernel", "bias") if layer.has_bias else ("kernel",))}
    others = sorted("/".join(map(str, p)) for p in leaf_paths(params) if p not in covered)
    if others:
        return (f"hessian='kfac' with subset='all' needs every parameter in a dense layer; "
                f"{others} are not. Use hessian='diag' or 'full', or subset='last_layer'.")
    return ""


def _kron_perm(params: Params, layers: tuple[DenseLayer, ...]) -> np.ndarray:
    """Flat positions of the KFAC ordering: per layer the rows of ``[kernel; bias]``."""
    leaves, treedef = jax.tree.flatten(params)
    sizes = [int(np.size(leaf)) for leaf in leaves]
    starts = np.cumsum([0, *sizes[:-1]])
    index = jax.tree.unflatten(treedef, [
        np.arange(s, s + n).reshape(np.shape(leaf))
        for s, n, leaf in zip(starts, sizes, leaves, strict=True)
    ])
    blocks = []
    for layer in layers:
        node = get_path(index, layer.path)
        rows = [np.asarray(node["kernel"])]
        if layer.has_bias:
            rows.append(np.asarray(node["bias"])[None])
        blocks.append(np.concatenate(rows).reshape(-1))
    return np.concatenate(blocks).astype(np.int32)


def _set_path(tree: Params, path: tuple, value: Any) -> Params:
    if not path:
        return value
    out = dict(tree)
    out[path[0]] = _set_path(tree[path[0]], path[1:], value)
    return out
