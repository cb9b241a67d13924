"""What every method and every posterior is: the contracts ``bdl.fit`` and save/load rely on.

A *method* is a typed, frozen ``Options`` dataclass plus a ``fit(key, network, likelihood,
data, options) -> Posterior`` (and, where its seeds can train as one program, a
``fit_seeds``). Options compose: a method that trains a network by optimisation holds a
``TrainOptions`` field (``train``) instead of inheriting from it, and ``bdl.fit(..., **kwargs)``
routes each flat keyword to the (sub-)options that declares it (``options_from_kwargs``).

A *posterior* is a ``Posterior``: ``predict``, ``sample_params``, ``to_state`` /
``from_state``. Save/load, sweeps and benchmarks use only these, never the concrete type.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax

from bdl.likelihoods import Likelihood
from bdl.models import Network, Params
from bdl.predictive import Predictive


class Posterior(abc.ABC):
    """The contract of every posterior ``bdl.fit`` returns.

    Concrete posteriors are final frozen dataclasses registered as pytrees
    (``register_posterior``: the arrays are the leaves), with the fields
    ``method`` (the name it was fitted with), ``network``, ``likelihood``, ``info`` (plain
    data: histories, diagnostics, options) and ``input_shape`` (one example's shape), and a
    class attribute ``kind``: the name save/load stores (unique per class).
    """

    kind: ClassVar[str]
    _KINDS: ClassVar[dict[str, type[Posterior]]] = {}

    method: str
    network: Network
    likelihood: Likelihood
    info: dict[str, Any]
    input_shape: tuple[int, ...]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind is not None:
            if kind in Posterior._KINDS and Posterior._KINDS[kind] is not cls:
                raise ValueError(f"Two posterior classes claim the kind {kind!r}.")
            Posterior._KINDS[kind] = cls

    @classmethod
    def of_kind(cls, kind: str) -> type[Posterior]:
        """The posterior class saved under ``kind``."""
        if kind not in Posterior._KINDS:
            raise ValueError(f"Unknown posterior kind {kind!r}; known: {sorted(Posterior._KINDS)}.")
        return Posterior._KINDS[kind]

    @abc.abstractmethod
    def predict(self, x, *, key: jax.Array | None = None, num_samples: int | None = None
                ) -> Predictive:
        """The predictive for inputs ``x`` ``[N, ...]``: batch shape ``[N]`` (``[N, D]`` for
        D-column regression targets). ``key``/``num_samples`` drive Monte Carlo predictives
        and are ignored by exact ones."""

    @abc.abstractmethod
    def sample_params(self, key: jax.Array, num_samples: int) -> Params:
        """``num_samples`` parameter draws ``{"net": [S, ...], "lik": [S, ...]}`` (plus
        ``"state"`` for models with state) from the posterior."""

    @abc.abstractmethod
    def to_state(self) -> dict[str, Any]:
        """The posterior's arrays and settings as plain data (nested dicts / lists / tuples of
        arrays, numbers and strings), beyond what ``from_state`` gets again: the model, the
        likelihood, ``method``, ``info`` and ``input_shape``."""

    @classmethod
    @abc.abstractmethod
    def from_state(cls, state: dict[str, Any], *, method: str, network: Network,
                   likelihood: Likelihood, info: dict[str, Any],
                   input_shape: tuple[int, ...]) -> Posterior:
        """The inverse of ``to_state``; arrays arrive as written (state dicts with string
        keys): restore them into the structure of ``network``'s own parameters, and raise a
        ``ValueError`` naming the mismatch when they do not fit."""


class _Static:
    """A posterior's non-array fields as pytree auxiliary data: compared and hashed by
    identity (``info`` holds numpy arrays, which have no truth value or hash)."""

    __slots__ = ("values",)

    def __init__(self, values: tuple):
        self.values = values

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


def register_posterior(cls: type, data_fields: tuple[str, ...]) -> type:
    """Register the posterior dataclass ``cls`` as a pytree whose leaves are the arrays of
    ``data_fields`` (the rest: method, network, likelihood, info, input_shape, ... are
    auxiliary data), so a posterior passes through ``jax.tree`` functions, ``jit`` and
    ``device_put`` like its arrays."""
    meta = tuple(f.name for f in dataclasses.fields(cls) if f.name not in data_fields)

    def flatten(post):
        return ([getattr(post, f) for f in data_fields],
                _Static(tuple(getattr(post, f) for f in meta)))

    def unflatten(aux: _Static, children):
        return cls(**dict(zip(data_fields, children, strict=True)),
                   **dict(zip(meta, aux.values, strict=True)))

    jax.tree_util.register_pytree_node(cls, flatten, unflatten)
    return cls


class Method(NamedTuple):
    """A registered method.

    Attributes:
      options: its frozen options dataclass (the defaults are its field defaults).
      fit: ``(key, network, likelihood, data, options) -> Posterior``.
      fit_seeds: ``(keys [S], network, likelihood, data, options, *, mesh) -> [Posterior]``
        when its seeds train as one compiled program, else None (seeds run in turn).
      carries_state: its posteriors hold a model's non-parameter state (BatchNorm).
    """

    options: type
    fit: Callable[..., Posterior]
    fit_seeds: Callable[..., list[Posterior]] | None = None
    carries_state: bool = False


def option_names(cls: type) -> list[str]:
    """Every flat keyword ``cls`` accepts: its own fields and those of its composed
    sub-options (fields whose default is itself an options dataclass)."""
    names = []
    for f in dataclasses.fields(cls):
        sub = _sub_options(f)
        names.extend(option_names(sub) if sub is not None else [f.name])
    return names


def options_from_kwargs(cls: type, kwargs: dict[str, Any], method: str) -> Any:
    """An instance of the options dataclass ``cls`` from flat keywords: each keyword goes to
    ``cls``'s own field of that name, or to the composed sub-options that declares it. An
    unknown keyword raises a ``TypeError`` naming the method and listing the known ones."""
    known = option_names(cls)
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise TypeError(f"Unknown option(s) {unknown} for method {method!r}; known: "
                        f"{sorted(known)}.")
    return _build(cls, kwargs)


def _build(cls: type, kwargs: dict[str, Any]) -> Any:
    return cls(**_routed(cls, kwargs))


def _routed(options: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The field values the flat ``kwargs`` set on ``options`` (a class or an instance): own
    fields directly, composed sub-options through their own (or the default) instance, so a
    method's own default sub-options keep their defaults where no keyword touches them."""
    values = {}
    for f in dataclasses.fields(options):
        sub = _sub_options(f)
        if sub is not None:
            mine = {k: v for k, v in kwargs.items() if k in set(option_names(sub))}
            if mine:
                base = f.default_factory() if isinstance(options, type) else getattr(
                    options, f.name)
                values[f.name] = dataclasses.replace(base, **_routed(base, mine))
        elif f.name in kwargs:
            values[f.name] = kwargs[f.name]
    return values


def _sub_options(field: dataclasses.Field) -> type | None:
    """The options dataclass a field composes (its default factory builds one), or None."""
    if field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
        if dataclasses.is_dataclass(default) and getattr(type(default), "composable", False):
            return type(default)
    return None
