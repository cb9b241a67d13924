"""Finding a network's dense layers and tapping their inputs and output gradients.

KFAC and last-layer Laplace need, for every dense layer ``s = a @ W + b``, the layer inputs
``a`` ``[N, d_in]`` and the gradients of the outputs with respect to the pre-activations ``s``
``[N, d_out]``. A ``Network`` is only ``apply(params, x)``, so the layers are found by
intercepting Flax's dense layers while the network is traced:

- Linen ``linen.Dense`` through ``linen.intercept_methods``; its parameters sit at the
  module's scope path in the parameter tree.
- NNX ``nnx.Linear`` by wrapping ``nnx.Linear.__call__`` for the duration of a trace (NNX has
  no interceptor API); its kernel is matched to a leaf of the parameter tree by identity (NNX
  modules merged from a state hold the very arrays of the pure parameter dict).

A tapped apply adds a perturbation ``eps_l`` ``[N, d_out]`` to the output of the l-th dense call
and returns the inputs of every call: ``d f / d eps_l`` is the gradient with respect to that
layer's pre-activations, computed by one ``vjp`` for all layers and examples at once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen, nnx

from bdl.models import Network, Params

Path = tuple[Any, ...]


class DenseLayer(NamedTuple):
    """One dense call ``s = a @ kernel + bias`` of the network, in call order.

    Attributes:
      path: keys from the root of the parameter tree to the dict holding ``kernel``/``bias``.
      in_features: ``d_in``; out_features: ``d_out``.
      has_bias: whether the layer adds a bias.
      input_ndim: rank of the layer input seen when tracing (2 for ``[N, d_in]``).
    """

    path: Path
    in_features: int
    out_features: int
    has_bias: bool
    input_ndim: int


_local = threading.local()
_lock = threading.Lock()
_patch_count = 0
_nnx_linear_call = nnx.Linear.__call__


def _nnx_call(self, inputs, *args, **kwargs):
    out = _nnx_linear_call(self, inputs, *args, **kwargs)
    callback = getattr(_local, "callback", None)
    return out if callback is None else callback(self, inputs, out)


def _linen_interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    callback = getattr(_local, "callback", None)
    if (callback is not None and context.method_name == "__call__"
            and isinstance(context.module, linen.Dense)):
        out = callback(context.module, args[0], out)
    return out


@contextlib.contextmanager
def intercept_dense(callback: Callable[[Any, jax.Array, jax.Array], jax.Array]) -> Iterator[None]:
    """Within the context, every ``linen.Dense`` / ``nnx.Linear`` call on this thread returns
    ``callback(module, inputs, outputs)`` instead of ``outputs``."""
    global _patch_count
    with _lock:
        if _patch_count == 0:
            nnx.Linear.__call__ = _nnx_call
        _patch_count += 1
    previous = getattr(_local, "callback", None)
    _local.callback = callback
    try:
        with linen.intercept_methods(_linen_interceptor):
            yield
    finally:
        _local.callback = previous
        with _lock:
            _patch_count -= 1
            if _patch_count == 0:
                nnx.Linear.__call__ = _nnx_linear_call


def key_name(k: Any) -> Any:
    """The plain key of a ``jax.tree_util`` path entry."""
    return getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))


def leaf_paths(params: Params) -> list[Path]:
    """Paths of the leaves of ``params`` in flattening (``ravel_pytree``) order."""
    return [tuple(key_name(k) for k in p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def get_path(tree: Any, path: Path) -> Any:
    for k in path:
        tree = tree[k]
    return tree


def find_dense_layers(network: Network, params: Params, x: jax.Array) -> tuple[DenseLayer, ...]:
    """The dense calls of ``network`` on inputs like ``x`` ``[N, ...]``, in call order.

    Raises ``ValueError`` when a dense layer's kernel is not a leaf of ``params`` or a layer is
    called more than once (shared weights).
    """
    found: list[DenseLayer] = []

    def trace(params, x):
        ids = {id(leaf): tuple(key_name(k) for k in path)
               for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}

        def record(module, inputs, out):
            if isinstance(module, linen.Module):
                path = tuple(module.scope.path)
                kernel = get_path(params, path + ("kernel",)) if _has(params, path) else None
                if kernel is None:
                    path = None
            else:
                path = ids.get(id(module.kernel[...]))
                path = path[:-1] if path is not None else None
            if path is None:
                raise ValueError(
                    "`model` has a dense layer whose kernel is not among the model parameters; "
                    "KFAC and last-layer Laplace cannot map it to the posterior."
                )
            found.append(DenseLayer(path, int(inputs.shape[-1]), int(out.shape[-1]),
                                    bool(module.use_bias), int(inputs.ndim)))
            return out

        with intercept_dense(record):
            return network.apply(params, x)

    jax.eval_shape(trace, params, x)
    paths = [layer.path for layer in found]
    shared = sorted({"/".join(map(str, p)) for p in paths if paths.count(p) > 1})
    if shared:
        raise ValueError(
            f"`model` calls the dense layer(s) {shared} more than once (shared weights); "
            "KFAC and last-layer Laplace need every dense layer called once per example."
        )
    return tuple(found)


def _has(params: Params, path: Path) -> bool:
    try:
        node = get_path(params, path)
    except (KeyError, IndexError, TypeError):
        return False
    return isinstance(node, dict) and "kernel" in node


def tapped_apply(network: Network, num_layers: int
                 ) -> Callable[[Params, jax.Array, tuple | None], tuple[jax.Array, tuple]]:
    """``tapped(params, x, eps) -> (f [N, out], inputs)``: the network with ``eps[l]``
    ``[N, d_out_l]`` added to the l-th dense output (``eps=None``: nothing added) and the
    inputs ``[N, d_in_l]`` of every dense call."""

    def tapped(params: Params, x: jax.Array, eps: tuple | None = None):
        inputs: list[jax.Array] = []

        def tap(module, a, out):
            i = len(inputs)
            if i >= num_layers:
                raise RuntimeError("`model` made more dense calls than when it was inspected.")
            inputs.append(a)
            return out if eps is None else out + eps[i]

        with intercept_dense(tap):
            f = network.apply(params, x)
        if len(inputs) != num_layers:
            raise RuntimeError("`model` made fewer dense calls than when it was inspected.")
        return f, tuple(inputs)

    return tapped


def check_last_layer_is_output(network: Network, layers: tuple[DenseLayer, ...],
                               params: Params, x: jax.Array) -> None:
    """Raise ``ValueError`` unless the network output moves one-for-one with the last dense
    layer's output (``d f / d s_L = I``), i.e. the model ends in a dense layer."""
    if not layers:
        raise ValueError(
            "subset='last_layer' needs a model with dense layers (linen.Dense / nnx.Linear); "
            "none were found. Use subset='all'."
        )
    last = layers[-1]
    tapped = tapped_apply(network, len(layers))
    f, _ = jax.eval_shape(lambda p, x: tapped(p, x), params, x)
    if last.input_ndim != 2 or f.shape[-1] != last.out_features:
        raise ValueError(
            "subset='last_layer' needs a model whose output is the output of its last dense "
            f"layer; the last dense layer outputs {last.out_features} value(s) per example but "
            f"the model outputs {f.shape[-1]}. Use subset='all'."
        )
    x = x[:8]
    probe = np.random.default_rng(0).normal(size=(x.shape[0], last.out_features))

    @jax.jit
    def response(params, x, probe):
        zeros = tuple(jnp.zeros((x.shape[0], layer.out_features), f.dtype) for layer in layers)
        tangents = tuple(jnp.zeros_like(z) for z in zeros[:-1]) + (probe.astype(f.dtype),)
        return jax.jvp(lambda e: tapped(params, x, e)[0], (zeros,), (tangents,))[1]

    df = np.asarray(response(params, x, probe))
    if not np.allclose(df, probe, rtol=1e-5, atol=1e-6):
        raise ValueError(
            "subset='last_layer' needs a model that ends in a dense layer (linen.Dense / "
            "nnx.Linear) whose output is the model output; this model transforms the last "
            "dense layer's output (an activation after it?). Use subset='all'."
        )
