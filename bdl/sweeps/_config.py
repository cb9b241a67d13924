"""Sweep specifications: a TOML file (or dict) -> a validated grid of configurations.

A sweep file::

    name = "small"
    seeds = 4                          # seeds 0..3, or a list [0, 5, 7]

    [grid]                             # every key is an axis; a list = its values
    method = ["map", "ensemble"]
    dataset = ["sine", "diabetes"]     # see bdl.sweeps.available_datasets()
    hidden = [[16], [32, 32]]          # hidden widths; an int h means [h]
    activation = "tanh"                # a scalar = one value
    noise = "homoscedastic"            # Gaussian noise (regression only)
    utility = "newsvendor"             # built-in, or a [utilities.NAME] table below

    [options]                          # method options for every method; lists are axes too
    epochs = 100
    learning_rate = [1e-3, 1e-2]

    [options.ensemble]                 # options for one method only (override the above)
    num_members = 5

    [utilities.newsvendor]             # an action utility of bdl.decisions, by its kind
    kind = "asymmetric"
    under = 3.0
    over = 1.0
    actions = { start = -3.0, stop = 3.0, num = 61 }

Every configuration is a flat-ish dict (``method, dataset, hidden, activation, noise,
utility, options``) with a ``config_id``: a hash of the configuration and of its utility's
definition. A run is a configuration and a seed, keyed by ``run_id(config_id, seed)``.
Errors name the offending key (``ConfigError: grid.methd: unknown key ...``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "BUILTIN_UTILITIES",
    "ConfigError",
    "SweepSpec",
    "config_hash",
    "load_config",
    "run_id",
]

HASH_VERSION = 1  # bump when a run's meaning changes, so old records are not reused
GRID_KEYS = ("method", "dataset", "hidden", "activation", "noise", "utility")
GRID_DEFAULTS: dict[str, Any] = {
    "hidden": [50],
    "activation": "relu",
    "noise": "homoscedastic",
    "utility": "default",
}
TOP_KEYS = ("name", "seeds", "grid", "options", "utilities")
# TrainOptions fields a TOML file cannot express (objects) or the runner owns.
_FORBIDDEN_OPTIONS = {
    "prior": "use `prior_precision = <float>` (an isotropic Gaussian prior)",
    "optimizer": "set `learning_rate` (Adam)",
    "init_params": "not expressible in a sweep file",
    "checkpoint_dir": "the sweep store keeps finished runs; checkpoints are not swept",
    "progress": "the sweep shows its own progress bar",
}
BUILTIN_UTILITIES: dict[str, dict[str, Any]] = {
    # newsvendor on standardised targets: shortfall costs 3x excess, order the 75% quantile
    "newsvendor": {"kind": "asymmetric", "under": 3.0, "over": 1.0,
                   "actions": {"start": -3.0, "stop": 3.0, "num": 61}},
    # classify or abstain (the number of classes comes from the data set)
    "selective": {"kind": "selective", "abstain_cost": 0.2},
}
_ACTION_KINDS = ("asymmetric", "table", "selective")


class ConfigError(ValueError):
    """A sweep file is malformed; the message names the key (``grid.method``, ...)."""

    def __init__(self, key: str, message: str, source: str | None = None):
        self.key, self.message = key, message
        where = f"{source}: " if source else ""
        super().__init__(f"{where}`{key}`: {message}")


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: grid axes, option axes, utilities and seeds.

    Attributes:
      name: a label for logs and the store.
      seeds: the seeds every configuration runs with.
      grid: axis name -> tuple of values (the keys of ``GRID_KEYS``).
      options: method option -> tuple of values, for every method.
      method_options: method -> (option -> tuple of values), applied after ``options``.
      utilities: utility name -> definition (``{"kind": ..., **arguments}``), built-ins
        included.
    """

    name: str
    seeds: tuple[int, ...]
    grid: dict[str, tuple]
    options: dict[str, tuple]
    method_options: dict[str, dict[str, tuple]]
    utilities: dict[str, dict[str, Any]]

    def configurations(self) -> list[dict[str, Any]]:
        """Every configuration of the grid, in grid order, without duplicates.

        Each is ``{"config_id", "method", "dataset", "hidden", "activation", "noise",
        "utility", "options"}``; ``noise`` is ``None`` and ``utility`` resolved for
        classification data sets.
        """
        from bdl.sweeps._datasets import get_dataset

        configs: dict[str, dict[str, Any]] = {}
        for values in itertools.product(*(self.grid[k] for k in GRID_KEYS)):
            base = dict(zip(GRID_KEYS, values, strict=True))
            task = get_dataset(base["dataset"]).task
            base["hidden"] = list(base["hidden"])
            if task == "classification":
                base["noise"] = None
            if base["utility"] == "default":
                base["utility"] = "newsvendor" if task == "regression" else "selective"
            kind = self.utilities[base["utility"]]["kind"]
            if (kind == "asymmetric") != (task == "regression"):
                raise ConfigError("grid.utility", f"utility {base['utility']!r} ({kind}) does not "
                                  f"fit the {task} data set {base['dataset']!r}.")
            axes = {**self.options, **self.method_options.get(base["method"], {})}
            names = sorted(axes)
            for option_values in itertools.product(*(axes[k] for k in names)):
                config = {**base, "options": dict(zip(names, option_values, strict=True))}
                cid = config_hash(config, self.utilities[config["utility"]])
                configs.setdefault(cid, {"config_id": cid, **config})
        return list(configs.values())

    def num_runs(self) -> int:
        """Configurations x seeds."""
        return len(self.configurations()) * len(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form that ``load_config`` reads back to an equal spec."""
        options: dict[str, Any] = {k: list(v) for k, v in self.options.items()}
        for method, opts in self.method_options.items():
            options[method] = {k: list(v) for k, v in opts.items()}
        user_utilities = {k: v for k, v in self.utilities.items() if BUILTIN_UTILITIES.get(k) != v}
        return {
            "name": self.name,
            "seeds": list(self.seeds),
            "grid": {k: [list(x) if isinstance(x, tuple) else x for x in v]
                     for k, v in self.grid.items()},
            "options": options,
            "utilities": user_utilities,
        }


def config_hash(config: Mapping[str, Any], utility: Mapping[str, Any] | None = None) -> str:
    """16-hex-digit hash of a configuration (without ``config_id``) and its utility definition."""
    payload = {k: v for k, v in config.items() if k != "config_id"}
    return _digest({"v": HASH_VERSION, "config": payload, "utility": utility})


def run_id(config_id: str, seed: int) -> str:
    """Key of one run (configuration ``config_id`` with ``seed``) in the results store."""
    return _digest({"config_id": config_id, "seed": int(seed)})


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- loading
def load_config(source: str | Path | Mapping[str, Any]) -> SweepSpec:
    """Read and validate a sweep from a TOML file path or an already-parsed mapping.

    Raises:
      ConfigError: naming the key, for an unknown key, a wrong type, an unknown method,
        data set, activation, noise or utility, or a TOML syntax error.
    """
    label = None
    if isinstance(source, Mapping):
        raw = dict(source)
    else:
        path = Path(source)
        label = str(path)
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ConfigError("<file>", f"invalid TOML: {err}", label) from None
    try:
        return _parse(raw)
    except ConfigError as err:
        if label is None:
            raise
        raise ConfigError(err.key, err.message, label) from None


def _parse(raw: dict[str, Any]) -> SweepSpec:
    import bdl
    from bdl.sweeps._datasets import available_datasets

    _known_keys("", raw, TOP_KEYS)
    name = raw.get("name", "sweep")
    if not isinstance(name, str):
        raise ConfigError("name", f"must be a string; got {name!r}.")
    seeds = _seeds(raw.get("seeds", 1))

    grid_raw = _table(raw, "grid")
    _known_keys("grid", grid_raw, GRID_KEYS)
    if "method" not in grid_raw:
        raise ConfigError("grid.method", "is required (e.g. method = [\"map\", \"ensemble\"]).")
    if "dataset" not in grid_raw:
        raise ConfigError("grid.dataset", f"is required; one of {available_datasets()}.")
    grid = {k: _axis(f"grid.{k}", grid_raw.get(k, GRID_DEFAULTS.get(k))) for k in GRID_KEYS}
    grid["hidden"] = tuple(_hidden(f"grid.hidden[{i}]", h) for i, h in enumerate(grid["hidden"]))

    utilities = dict(BUILTIN_UTILITIES)
    for uname, definition in _table(raw, "utilities").items():
        utilities[uname] = _utility(f"utilities.{uname}", definition)

    methods = bdl.available()
    choices = {
        "method": methods,
        "dataset": available_datasets(),
        "noise": ["homoscedastic", "heteroscedastic"],
        "utility": ["default", *sorted(utilities)],
        "activation": ["elu", "gelu", "relu", "silu", "tanh"],
    }
    for key, allowed in choices.items():
        for i, value in enumerate(grid[key]):
            if value not in allowed:
                raise ConfigError(f"grid.{key}[{i}]" if len(grid[key]) > 1 else f"grid.{key}",
                                  f"unknown value {value!r}; choose from {allowed}.")

    options: dict[str, tuple] = {}
    method_options: dict[str, dict[str, tuple]] = {}
    for key, value in _table(raw, "options").items():
        if isinstance(value, Mapping):
            if key not in methods:
                raise ConfigError(f"options.{key}",
                                  f"a sub-table must be named after a method; choose from {methods}.")
            method_options[key] = {k: _option(f"options.{key}.{k}", k, v)
                                   for k, v in value.items()}
        else:
            options[key] = _option(f"options.{key}", key, value)
    for method in grid["method"]:
        _check_method_options(method, options, method_options.get(method, {}))
    spec = SweepSpec(name, seeds, grid, options, method_options, utilities)
    spec.configurations()  # checks what needs the data sets (utility kind vs task)
    return spec


def _check_method_options(method: str, common: dict[str, tuple],
                          own: dict[str, tuple]) -> None:
    """Every option a method gets must be a field of its options class (or of the options
    it composes), and every swept value must build one: errors name the key at load time,
    not as failed runs later."""
    from bdl.approximators import make_options, option_names, options_class

    cls = options_class(method)
    if cls is None:  # a method registered as a plain function checks its keywords itself
        return
    known = set(option_names(cls)) | {"prior_precision"}  # the runner maps it to `prior`
    for prefix, table in (("options", common), (f"options.{method}", own)):
        for name, values in table.items():
            key = f"{prefix}.{name}"
            if name not in known:
                raise ConfigError(key, f"not an option of {method!r} ({cls.__name__}); known: "
                                       f"{sorted(known)}.")
            if name == "prior_precision":
                continue
            for value in values:
                try:
                    make_options(method, **{name: value})
                except (TypeError, ValueError) as err:
                    raise ConfigError(key, f"{value!r} is not valid for {method!r}: {err}") from None


def _known_keys(prefix: str, table: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for key in table:
        if key not in known:
            full = f"{prefix}.{key}" if prefix else key
            raise ConfigError(full, f"unknown key; known keys here: {list(known)}.")


def _table(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"must be a table ([{key}]); got {type(value).__name__}.")
    return dict(value)


def _seeds(value: Any) -> tuple[int, ...]:
    if isinstance(value, bool):
        raise ConfigError("seeds", f"must be a count or a list of ints; got {value!r}.")
    if isinstance(value, int):
        if value < 1:
            raise ConfigError("seeds", f"a count must be >= 1; got {value}.")
        return tuple(range(value))
    if (isinstance(value, list) and value
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)):
        if len(set(value)) != len(value):
            raise ConfigError("seeds", f"seeds must be distinct; got {value}.")
        return tuple(value)
    raise ConfigError("seeds", f"must be a count or a non-empty list of ints >= 0; got {value!r}.")


def _axis(key: str, value: Any) -> tuple:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(key, "an axis needs at least one value.")
    for v in values:
        if isinstance(v, Mapping):
            raise ConfigError(key, f"values must be scalars or lists; got a table {v!r}.")
    return tuple(values)


def _hidden(key: str, value: Any) -> tuple[int, ...]:
    widths = list(value) if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths):
        raise ConfigError(key, f"hidden widths must be positive ints; got {value!r}.")
    return tuple(widths)


def _option(key: str, name: str, value: Any) -> tuple:
    if name in _FORBIDDEN_OPTIONS:
        raise ConfigError(key, f"cannot be swept: {_FORBIDDEN_OPTIONS[name]}.")
    values = _axis(key, value)
    for v in values:
        if isinstance(v, list):
            raise ConfigError(key, f"option values must be scalars; got the list {v!r}.")
    return values


def _utility(key: str, definition: Any) -> dict[str, Any]:
    from bdl import decisions

    if not isinstance(definition, Mapping):
        raise ConfigError(key, "must be a table with a `kind` and the utility's arguments.")
    definition = dict(definition)
    kind = definition.get("kind")
    if kind not in _ACTION_KINDS:
        raise ConfigError(
            f"{key}.kind",
            f"must be an action utility of bdl.decisions, one of {list(_ACTION_KINDS)}; got "
            f"{kind!r} (selection utilities such as threshold/linear need alternatives per "
            "case, which i.i.d. test points do not have).",
        )
    args = {k: v for k, v in definition.items() if k != "kind"}
    signature = inspect.signature(getattr(decisions, kind))
    for arg in args:
        if arg not in signature.parameters:
            raise ConfigError(f"{key}.{arg}", f"unknown argument of bdl.decisions.{kind}; "
                              f"known: {list(signature.parameters)}.")
    actions = args.get("actions")
    if isinstance(actions, Mapping):
        if set(actions) != {"start", "stop", "num"}:
            raise ConfigError(f"{key}.actions", "a grid table needs exactly start, stop, num.")
    return definition
