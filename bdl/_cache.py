"""Memoised builders, so that a repeated ``bdl.fit`` reuses its compiled programs.

``jax.jit`` caches compiled programs per Python function object. bdl builds its programs from
closures (the model's ``apply``, the loss, one epoch), so two identical calls would compile
twice unless the same closures come back: ``memo(key, build)`` returns the object built for an
equal ``key`` before. Keys are tuples of hashable configuration (likelihoods and priors compare
by value; functions by identity). An unhashable key just builds afresh.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
_SIZE = 256
_MEMO: OrderedDict[Hashable, Any] = OrderedDict()


def memo(key: Hashable, build: Callable[[], T]) -> T:
    """``build()``, or what it returned for an equal ``key`` before (least recently used
    entries are dropped beyond 256)."""
    try:
        hit = key in _MEMO
    except TypeError:  # an unhashable part: nothing to share
        return build()
    if hit:
        _MEMO.move_to_end(key)
        return _MEMO[key]
    value = build()
    _MEMO[key] = value
    if len(_MEMO) > _SIZE:
        _MEMO.popitem(last=False)
    return value
