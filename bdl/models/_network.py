"""The functional view of a model that every approximator works with.

A ``Network`` is a set of pure functions over pytrees (nested dicts of arrays):

- ``init(key) -> params``: the parameters a posterior is over;
- ``init_state(key) -> state``: everything else the forward pass reads or updates (BatchNorm
  running statistics, other mutable variables); ``{}`` for most models;
- ``forward(params, state, x, *, key=None, train=False) -> (out, new_state)``: the protocol.
  ``train=True`` is the training-mode pass (dropout on, BatchNorm normalising with the batch
  and updating its statistics in ``new_state``); ``train=False`` is prediction (dropout off,
  frozen statistics, ``new_state is state``). ``key`` feeds the randomness of a training-mode
  pass (dropout); a model that needs one and gets none raises a clear error.
- ``apply(params, x, state=None) -> out``: the prediction-mode output, derived from
  ``forward``; ``state`` is required when the model has state.

Flax is only touched here, at the edge. NNX modules are split once with filters
(``nnx.Param``, ``nnx.BatchStat``, ``nnx.RngState``, other variables); their RNG streams are
reseeded from ``key`` on every training-mode pass, so randomness is explicit and nothing is
stored. Linen modules give ``init``/``apply`` with mutable collections and ``rngs``; a Linen
module switches between training and prediction through a ``train`` (or ``deterministic``)
argument of its ``__call__`` when it has one. Approximators never know which API a model came
from.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import errors as flax_errors
from flax import linen, nnx

from bdl._cache import memo

Params = Any  # a pytree of arrays (nested dicts)
State = Any  # a pytree of arrays: BatchNorm statistics and other non-parameter variables
Forward = Callable[..., tuple[jax.Array, State]]


def _no_state(key: jax.Array) -> State:
    return {}


class Network(NamedTuple):
    """Pure functions of a model (see the module docstring).

    Attributes:
      init: ``key -> params``; different keys give different initialisations.
      forward: ``(params, state, x [N, *in], *, key=None, train=False) -> (out [N, out],
        new_state)``.
      init_state: ``key -> state`` (``{}`` when the model has none).
      reinitialisable: False when ``init`` ignores its key (an already-built NNX instance).
      has_state: the model carries non-parameter state (BatchNorm statistics).
      stochastic: a training-mode pass draws randomness (dropout) and needs a ``key``.
    """

    init: Callable[[jax.Array], Params]
    forward: Forward
    init_state: Callable[[jax.Array], State] = _no_state
    reinitialisable: bool = True
    has_state: bool = False
    stochastic: bool = False

    def apply(self, params: Params, x: jax.Array, state: State = None) -> jax.Array:
        """Prediction-mode outputs ``[N, out]`` (no randomness, frozen ``state``)."""
        if state is None:
            if self.has_state:
                raise ValueError(
                    "This model carries state (BatchNorm statistics): pass the `state` its "
                    "posterior holds; a method that cannot carry state refuses such models."
                )
            state = {}
        return self.forward(params, state, x)[0]


def stateless(apply: Callable[[Params, jax.Array], jax.Array]) -> Forward:
    """The ``forward`` of a model without state or randomness, from ``apply(params, x)``."""

    def forward(params, state, x, *, key=None, train=False):
        return apply(params, x), state

    return forward


def as_network(model, x_example: jax.Array) -> Network:
    """Turn a model into a ``Network``.

    Accepted ``model``s:
      - a bdl model spec (anything with a ``network(x_example)`` method, e.g. ``bdl.models.MLP``);
      - a Flax Linen module (``linen.Module``; initialised with ``model.init(key, x[:1])``);
      - a factory ``rngs -> nnx.Module`` (re-initialisable: ensembles get distinct members);
      - an ``nnx.Module`` instance (its current parameters and state are the initialisation).

    BatchNorm statistics and other mutable variables become the network's ``state``; dropout
    draws from the ``key`` given to ``forward``. float16/bfloat16 parameters get float32
    master copies (``with_float32_master``).
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

    return network._replace(init=init, reinitialisable=True)


_LOW_PRECISION = (jnp.float16, jnp.bfloat16)


def with_float32_master(network: Network) -> Network:
    """Mixed precision for a model with float16/bfloat16 parameters.

    The parameters every approximator sees (optimiser updates, curvature, samples) are
    float32 master copies; ``forward`` casts them to the model's own dtypes for the pass and
    returns outputs in at least float32, so losses and likelihoods accumulate in float32
    (fp16's range and Adam's epsilon underflow otherwise turn the loss NaN). A model without
    low-precision parameters is returned unchanged.
    """
    dtypes = jax.tree.map(lambda a: a.dtype, jax.eval_shape(network.init, jax.random.key(0)))
    if not any(d in _LOW_PRECISION for d in jax.tree.leaves(dtypes)):
        return network
    master = lambda d: jnp.float32 if d in _LOW_PRECISION else d

    def init(key: jax.Array) -> Params:
        return jax.tree.map(lambda a, d: a.astype(master(d)), network.init(key), dtypes)

    def build():
        def forward(params, state, x, *, key=None, train=False):
            low = jax.tree.map(lambda a, d: a.astype(d), params, dtypes)
            out, state = network.forward(low, state, x, key=key, train=train)
            return out.astype(jnp.promote_types(out.dtype, jnp.float32)), state

        return forward

    spec = (jax.tree.structure(dtypes), tuple(str(d) for d in jax.tree.leaves(dtypes)))
    forward = memo(("float32_master", network.forward, spec), build)
    return network._replace(init=init, forward=forward)


# ------------------------------------------------------------------------------------ NNX
def nnx_factory_network(factory: Callable[[nnx.Rngs], nnx.Module]) -> Network:
    """A ``Network`` from a factory ``rngs -> nnx.Module``."""
    abstract = nnx.eval_shape(lambda: factory(nnx.Rngs(0)))
    graphdef, abstract_params, abstract_state, abstract_rng = _nnx_split(abstract)

    def init(key: jax.Array) -> Params:
        return nnx.to_pure_dict(_nnx_split(factory(nnx.Rngs(key)))[1])

    def init_state(key: jax.Array) -> State:
        return nnx.to_pure_dict(_nnx_split(factory(nnx.Rngs(key)))[2])

    return _nnx_network(graphdef, abstract_params, abstract_state, abstract_rng, init,
                        init_state, reinitialisable=True)


def _nnx_instance_network(module: nnx.Module) -> Network:
    graphdef, params, state, rng = _nnx_split(module)
    pure_params, pure_state = nnx.to_pure_dict(params), nnx.to_pure_dict(state)
    shapes = lambda tree: jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), tree)
    return _nnx_network(graphdef, shapes(params), shapes(state), shapes(rng),
                        lambda key: pure_params, lambda key: pure_state,
                        reinitialisable=False)


def _nnx_split(module):
    """``graphdef, params, state, rng``: parameters, every other variable but the RNG
    streams, and the RNG streams (reseeded from the forward pass's ``key``)."""
    graphdef, params, rng, state = nnx.split(module, nnx.Param, nnx.RngState, ...)
    return graphdef, params, state, rng


def _nnx_network(graphdef, params_t, state_t, rng_t, init, init_state, *,
                 reinitialisable: bool) -> Network:
    has_state = bool(jax.tree.leaves(state_t))
    stochastic = bool(jax.tree.leaves(rng_t))
    forward = _nnx_forward(graphdef, params_t, state_t, rng_t)
    return Network(init, forward, init_state if has_state else _no_state, reinitialisable,
                   has_state, stochastic)


def _spec(tree) -> tuple:
    return (jax.tree.structure(tree),
            tuple((tuple(v.shape), str(v.dtype)) for v in jax.tree.leaves(tree)))


def _nnx_forward(graphdef, params_t, state_t, rng_t) -> Forward:
    """``forward`` for a graph definition, shared by every module of the same structure."""

    def build():
        def forward(params, state, x, *, key=None, train=False):
            if train and key is None and jax.tree.leaves(rng_t):
                raise ValueError(
                    "`model` draws randomness in training (dropout): its forward pass needs "
                    "a `key` (bdl passes one whenever the method trains the model)."
                )
            p = jax.tree.map(lambda v: v, params_t)
            nnx.replace_by_pure_dict(p, params)
            s = jax.tree.map(lambda v: v, state_t)
            if state:
                nnx.replace_by_pure_dict(s, state)
            module = nnx.merge(graphdef, p, _seeded(rng_t, key), s)
            module.train() if train else module.eval()
            out = module(x)
            if not train:
                return out, state
            return out, nnx.to_pure_dict(_nnx_split(module)[2])

        return forward

    return memo(("nnx_forward", graphdef, _spec(params_t), _spec(state_t), _spec(rng_t)), build)


def _seeded(rng_t, key):
    """RNG-stream variables with fresh keys ``fold_in(key, i)`` and zero counts."""
    key = jax.random.key(0) if key is None else key
    leaves, treedef = jax.tree.flatten(rng_t)
    fresh = []
    for i, leaf in enumerate(leaves):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            fresh.append(jax.random.fold_in(key, i))
        else:
            fresh.append(jnp.zeros(leaf.shape, leaf.dtype))
    state = jax.tree.unflatten(treedef, fresh)
    return state


# ---------------------------------------------------------------------------------- Linen
def _linen_network(module: linen.Module, x_example: jax.Array) -> Network:
    x1 = jnp.asarray(x_example[:1])
    mode = _linen_mode_argument(module)
    rngs0 = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    variables = jax.eval_shape(lambda: module.init(rngs0, x1, **mode(False)))
    collections = tuple(sorted(set(variables) - {"params"}))

    def init(key: jax.Array) -> Params:
        k_params, k_dropout = jax.random.split(key)
        v = module.init({"params": k_params, "dropout": k_dropout}, x1, **mode(False))
        return linen.unbox(v["params"])

    def init_state(key: jax.Array) -> State:
        k_params, k_dropout = jax.random.split(key)
        v = module.init({"params": k_params, "dropout": k_dropout}, x1, **mode(False))
        return {c: linen.unbox(v[c]) for c in collections}

    def forward(params, state, x, *, key=None, train=False):
        rngs = {} if key is None else {"dropout": key}
        variables = {"params": params, **state}
        try:
            if train and collections:
                out, updated = module.apply(variables, x, rngs=rngs, mutable=list(collections),
                                            **mode(True))
                return out, {**state, **updated}
            return module.apply(variables, x, rngs=rngs, **mode(train)), state
        except flax_errors.ModifyScopeVariableError as err:
            raise ValueError(
                "`model` updates its BatchNorm statistics even in prediction "
                "(use_running_average fixed to False): give its __call__ a `train` argument "
                "and use BatchNorm(use_running_average=not train) (bdl passes train=False "
                f"when predicting). Flax said: {err}"
            ) from err
        except flax_errors.InvalidRngError as err:
            raise ValueError(
                "`model` draws randomness (dropout) in this pass but has no `key`: in "
                "prediction give its __call__ a `train` or `deterministic` argument that turns "
                f"dropout off (bdl passes train=False when predicting). Flax said: {err}"
            ) from err

    stochastic = _linen_uses_dropout(module, x1, mode, rngs0)
    return Network(init, forward, init_state if collections else _no_state, True,
                   bool(collections), stochastic)


def _linen_mode_argument(module: linen.Module) -> Callable[[bool], dict]:
    """How to tell a Linen module training from prediction: its ``train`` or
    ``deterministic`` (or ``use_running_average``) call argument, when it has one."""
    try:
        params = inspect.signature(module.__call__).parameters
    except (TypeError, ValueError):
        params = {}
    if "train" in params:
        return lambda train: {"train": train}
    if "training" in params:
        return lambda train: {"training": train}
    if "deterministic" in params:
        return lambda train: {"deterministic": not train}
    if "use_running_average" in params:
        return lambda train: {"use_running_average": not train}
    return lambda train: {}


def _linen_uses_dropout(module, x1, mode, rngs0) -> bool:
    """Whether a training-mode pass asks for a ``dropout`` key."""
    variables = jax.eval_shape(lambda: module.init(rngs0, x1, **mode(False)))
    try:
        jax.eval_shape(lambda v: module.apply(v, x1, **mode(True),
                                              mutable=list(set(v) - {"params"})), variables)
    except flax_errors.InvalidRngError:
        return True
    return False
