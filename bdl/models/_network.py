"""The functional view of a model that every approximator works with.

A ``Network`` is a pair of pure functions over a parameter pytree (nested dicts of arrays):
``init(key) -> params`` and ``apply(params, x) -> outputs``. Flax is only touched here, at the
edge: NNX modules are split once with ``nnx.split`` into a graph definition and a parameter
pytree; Linen modules give ``init``/``apply``. Approximators never know which API a model came
from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import linen, nnx

from bdl._cache import memo

Params = Any  # a pytree of arrays (nested dicts)


class Network(NamedTuple):
    """Pure functions of a model.

    Attributes:
      init: ``key -> params``; different keys give different initialisations.
      apply: ``(params, x [N, *in]) -> outputs [N, out]``.
      reinitialisable: False when ``init`` ignores its key (an already-built NNX instance),
        so methods that need several different initialisations (ensembles) can refuse it.
    """

    init: Callable[[jax.Array], Params]
    apply: Callable[[Params, jax.Array], jax.Array]
    reinitialisable: bool = True


def as_network(model, x_example: jax.Array) -> Network:
    """Turn a model into a ``Network``.

    Accepted ``model``s:
      - a bdl model spec (anything with a ``network(x_example)`` method, e.g. ``bdl.models.MLP``);
      - a Flax Linen module (``linen.Module``; initialised with ``model.init(key, x[:1])``);
      - a factory ``rngs -> nnx.Module`` (re-initialisable: ensembles get distinct members);
      - an ``nnx.Module`` instance (its current parameters are the initialisation).

    Models with state other than parameters (BatchNorm statistics, dropout RNG streams) are
    refused with an error that says why: their outputs depend on mutable state that a
    posterior over parameters does not carry.
    """
    if not isinstance(model, nnx.Module) and not _is_function(model):
        # a hashable spec (bdl MLP, Linen module): the same Network for the same input spec,
        # so the programs compiled for it are reused by a repeated fit (bdl._cache)
        spec = (jnp.shape(x_example)[1:], jnp.result_type(x_example))
        return memo(("as_network", model, spec), lambda: _build_network(model, x_example))
    return _build_network(model, x_example)


def _is_function(model) -> bool:
    return callable(model) and not hasattr(model, "network") and not isinstance(
        model, linen.Module)


def _build_network(model, x_example: jax.Array) -> Network:
    if hasattr(model, "network") and callable(model.network):
        network = model.network(x_example)
    elif isinstance(model, linen.Module):
        network = _linen_network(model, x_example)
    elif isinstance(model, nnx.Module):
        network = _nnx_instance_network(model)
    elif callable(model):
        network = nnx_factory_network(model)
    else:
        raise TypeError(
            f"`model` must be a bdl model, a Flax Linen module, an NNX module or a factory "
            f"`rngs -> nnx.Module`; got {type(model).__name__}."
        )
    return with_float32_master(network)


def with_shuffled_init(network: Network) -> Network:
    """A re-initialisable ``Network`` from one that is not (an already-built NNX module):
    ``init(key)`` permutes the entries of every parameter array at random.

    Flax initialisers draw each array's entries i.i.d., so a random permutation of them is
    another draw with the same marginal distribution (and the same empirical one); arrays
    with one distinct value (zero biases, unit scales) are unchanged. Ensembles use it to get
    distinct members from a single module instance.
    """
    if network.reinitialisable:
        return network

    def init(key: jax.Array) -> Params:
        params = network.init(key)
        leaves, treedef = jax.tree.flatten(params)
        keys = jax.random.split(key, len(leaves))
        shuffled = [jax.random.permutation(k, a.reshape(-1)).reshape(a.shape)
                    for k, a in zip(keys, leaves, strict=True)]
        return jax.tree.unflatten(treedef, shuffled)

    return Network(init, network.apply, reinitialisable=True)


_LOW_PRECISION = (jnp.float16, jnp.bfloat16)


def with_float32_master(network: Network) -> Network:
    """Mixed precision for a model with float16/bfloat16 parameters.

    The parameters every approximator sees (optimiser updates, curvature, samples) are
    float32 master copies; ``apply`` casts them to the model's own dtypes for the forward
    pass and returns outputs in at least float32, so losses and likelihoods accumulate in
    float32 (fp16's range and Adam's epsilon underflow otherwise turn the loss NaN). A
    model without low-precision parameters is returned unchanged.
    """
    dtypes = jax.tree.map(lambda a: a.dtype, jax.eval_shape(network.init, jax.random.key(0)))
    if not any(d in _LOW_PRECISION for d in jax.tree.leaves(dtypes)):
        return network
    master = lambda d: jnp.float32 if d in _LOW_PRECISION else d

    def init(key: jax.Array) -> Params:
        return jax.tree.map(lambda a, d: a.astype(master(d)), network.init(key), dtypes)

    def build_apply():
        def apply(params: Params, x: jax.Array) -> jax.Array:
            out = network.apply(jax.tree.map(lambda a, d: a.astype(d), params, dtypes), x)
            return out.astype(jnp.promote_types(out.dtype, jnp.float32))

        return apply

    spec = (jax.tree.structure(dtypes), tuple(str(d) for d in jax.tree.leaves(dtypes)))
    apply = memo(("float32_master", network.apply, spec), build_apply)
    return Network(init, apply, network.reinitialisable)


def nnx_factory_network(factory: Callable[[nnx.Rngs], nnx.Module]) -> Network:
    """A ``Network`` from a factory ``rngs -> nnx.Module``."""
    abstract = nnx.eval_shape(lambda: factory(nnx.Rngs(0)))
    _check_nnx_state(abstract)
    graphdef, abstract_params = nnx.split(abstract, nnx.Param)

    def init(key: jax.Array) -> Params:
        module = factory(nnx.Rngs(key))
        return nnx.to_pure_dict(nnx.split(module, nnx.Param, ...)[1])

    return Network(init, _nnx_apply(graphdef, abstract_params))


def _nnx_instance_network(module: nnx.Module) -> Network:
    _check_nnx_state(module)
    graphdef, params = nnx.split(module, nnx.Param)
    pure = nnx.to_pure_dict(params)
    template = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params)
    return Network(lambda key: pure, _nnx_apply(graphdef, template), reinitialisable=False)


def _nnx_apply(graphdef, template):
    """``apply`` for a graph definition, shared by every module of the same structure."""

    def build():
        def apply(params: Params, x: jax.Array) -> jax.Array:
            state = jax.tree.map(lambda v: v, template)
            nnx.replace_by_pure_dict(state, params)
            return nnx.merge(graphdef, state)(x)

        return apply

    leaves = jax.tree.leaves(template)
    spec = (jax.tree.structure(template),
            tuple((tuple(v.shape), str(v.dtype)) for v in leaves))
    return memo(("nnx_apply", graphdef, spec), build)


def _check_nnx_state(module) -> None:
    _, _, rest = nnx.split(module, nnx.Param, ...)
    leaves = jax.tree.leaves(rest)
    if leaves:
        kinds = sorted({type(v).__name__ for v in jax.tree.leaves(rest, is_leaf=_is_variable)})
        raise ValueError(
            f"`model` carries state besides parameters ({', '.join(kinds)}): BatchNorm "
            "statistics or dropout RNG streams make its output depend on mutable state that a "
            "posterior over parameters does not model. Use a model without them (LayerNorm "
            "works; for MC dropout use a method that supports it)."
        )


def _is_variable(v) -> bool:
    return isinstance(v, nnx.Variable)


def _linen_network(module: linen.Module, x_example: jax.Array) -> Network:
    x1 = jnp.asarray(x_example[:1])
    variables = jax.eval_shape(module.init, jax.random.key(0), x1)
    extra = sorted(set(variables) - {"params"})
    if extra:
        raise ValueError(
            f"`model` has Linen collections besides 'params' ({', '.join(extra)}): BatchNorm "
            "statistics and other mutable state are not supported by posteriors over "
            "parameters. Use a model without them (LayerNorm works)."
        )

    def init(key: jax.Array) -> Params:
        return linen.unbox(module.init(key, x1)["params"])

    def apply(params: Params, x: jax.Array) -> jax.Array:
        return module.apply({"params": params}, x)

    return Network(init, apply)
