"""The limit tables, and the limits a model is held to (`resolve_limits`).

Two tables state a model's per-key limits (RPM/RPH/RPD requests, TPM/TPH/TPD tokens): the
plugin's own (`ProviderSpec.limits`, a TOML file in its package, taken from the provider's
published rate-limit page) and keycycle's (``config/models/<provider>.yaml``, plus for
OpenRouter a list of free models, which keycycle gives its ``default`` row). Each limit comes,
in this order, from the configuration (``[providers.NAME.models."MODEL"]``), the plugin's table,
keycycle's table, and, for a model neither table knows, `DEFAULT_LIMITS`. The key pools and
`hfs models`/`hfs check` all ask `resolve_limits`, so what the CLI shows is what a pool enforces.

keycycle's tables are read from its data files without importing keycycle (a database layer
and a logging set-up), with PyYAML (keycycle's own reader), loaded on first use. The
environment check only asks whether a model is in a table (`is_known_model`); it must not pay
for PyYAML (tens of milliseconds), so it scans keycycle's files for model IDs alone: the table's
top-level keys and the list's ``id`` entries. Tests check that the scan finds exactly the models
PyYAML reads. A plugin's table is small TOML, read (once) only when a model's limits are asked.

A model's limits hold per key unless the configuration groups keys (``[providers.NAME]
key_groups``, keys of one Google project or one organisation): the keys of a group share each
limit as one budget (`budgets`).
"""

from __future__ import annotations

import datetime
import functools
import importlib.util
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hfs_core.plugin import declared_keys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from hfs_core.plugin import ProviderSpec

LIMIT_FIELDS = ("rpm", "rph", "rpd", "tpm", "tph", "tpd")
"""The limits a model has per key: requests per minute, hour, day; tokens per minute, hour, day."""

DEFAULT_LIMITS: Mapping[str, int] = {"rpm": 5, "rph": 100, "rpd": 100}
"""The conservative default for a model no table knows, per key: 5 requests a minute, 100 an
hour, 100 a day, tokens unlimited (a token limit below a prompt's size would refuse it outright).
5 a minute is the lowest per-minute limit of the four bundled providers' free tiers."""

Source = Literal["config", "plugin", "keycycle", "default"]
"""Where a limit comes from, in order of precedence."""

_FIELDS = {
    "requests_per_minute": "rpm",
    "requests_per_hour": "rph",
    "requests_per_day": "rpd",
    "tokens_per_minute": "tpm",
    "tokens_per_hour": "tph",
    "tokens_per_day": "tpd",
}


@dataclass(frozen=True)
class ModelLimits:
    """One row of keycycle's table; None where keycycle sets no limit."""

    model: str
    rpm: int | None = None
    rph: int | None = None
    rpd: int | None = None
    tpm: int | None = None
    tph: int | None = None
    tpd: int | None = None


@functools.cache
def _models_dir() -> Path | None:
    found = importlib.util.find_spec("keycycle")
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / "config" / "models"
    return path if path.is_dir() else None


def _read_yaml(path: Path) -> Any:
    import yaml

    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def _row(model: str, values: Any) -> ModelLimits:
    fields = values if isinstance(values, dict) else {}
    return ModelLimits(model, **{short: fields.get(name) for name, short in _FIELDS.items()})


@functools.cache
def limit_table(provider: str) -> dict[str, ModelLimits] | None:
    """keycycle's limits for `provider` (``default`` included), or None if keycycle has no table."""
    directory = _models_dir()
    if directory is None or not (directory / f"{provider}.yaml").is_file():
        return None
    data = _read_yaml(directory / f"{provider}.yaml") or {}
    return {str(model): _row(str(model), values) for model, values in data.items()}


@functools.cache
def model_list(provider: str) -> tuple[str, ...]:
    """Model IDs keycycle lists for `provider` beyond its limit table (OpenRouter's free models)."""
    directory = _models_dir()
    path = directory / f"{provider}_models.yaml" if directory else None
    if path is None or not path.is_file():
        return ()
    return tuple(str(item["id"]) for item in _read_yaml(path) or () if isinstance(item, dict) and "id" in item)


def known_models(provider: str) -> dict[str, ModelLimits] | None:
    """Every model keycycle knows for `provider`, with the limits that apply to it.

    Models without a row of their own (OpenRouter's, whose limits are shared) get the
    ``default`` row. None when keycycle has no table for the provider.
    """
    table = limit_table(provider)
    if table is None:
        return None
    default = table.get("default")
    models = {name: row for name, row in table.items() if name != "default"}
    for name in model_list(provider):
        if name not in models:
            models[name] = ModelLimits(name, **{k: getattr(default, k) for k in _FIELDS.values()}) \
                if default else ModelLimits(name)
    return models


@functools.cache
def model_names(provider: str) -> frozenset[str] | None:
    """The IDs `known_models` gives for `provider`, scanned without a YAML parser (None: no table)."""
    directory = _models_dir()
    if directory is None or not (directory / f"{provider}.yaml").is_file():
        return None
    table = (directory / f"{provider}.yaml").read_text(encoding="utf-8")
    names = {_unquote(name) for name in re.findall(r"^([^\s#-][^:#]*):\s*(?:#.*)?$", table, re.MULTILINE)}
    listed = directory / f"{provider}_models.yaml"
    if listed.is_file():
        text = listed.read_text(encoding="utf-8")
        names.update(_unquote(i) for i in re.findall(r"^\s*-?\s*id:\s*(\S+)\s*$", text, re.MULTILINE))
    names.discard("default")
    return frozenset(names)


def _unquote(name: str) -> str:
    return name.strip().strip("'\"")


def is_known_model(spec: ProviderSpec, model: str) -> bool:
    """Whether `model` is in `spec`'s plugin table or keycycle's (False: `DEFAULT_LIMITS` apply).

    Cheap: the plugin's small TOML file and a scan of keycycle's, never PyYAML."""
    return model in plugin_table(spec.limits).models or model in (model_names(spec.keycycle_name) or ())


@dataclass(frozen=True)
class PluginTable:
    """A plugin's limit table: the page it was taken from, the day that page was read, and its rows.

    `problem` says why the file cannot be used ("" when it can); its rows are then empty.
    """

    source: str
    read: str
    models: Mapping[str, Mapping[str, int]]
    problem: str = ""


@functools.cache
def plugin_table(resource: str) -> PluginTable:
    """The table a plugin ships as `resource` (``"package:file.toml"``; "" for none), read once.

    The file holds ``source`` (the URL of the provider's rate-limit page), ``read`` (the date
    it was read) and ``[models."MODEL"]`` tables of `LIMIT_FIELDS`, whole numbers of at least 1.
    """
    if not resource:
        return PluginTable("", "", {})
    package, _, name = resource.partition(":")
    try:
        data = tomllib.loads(_resource_text(package, name))
        return _plugin_table(data)
    except (OSError, ImportError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError) as exc:
        return PluginTable("", "", {}, f"{resource} cannot be used ({type(exc).__name__}: {exc})")


def _resource_text(package: str, name: str) -> str:
    """The text of file `name` of `package`: read from the package's folder when it has one on disk (as
    importlib.resources would, without its 2 ms import), else through importlib.resources (a zip, say)."""
    spec = importlib.util.find_spec(package)
    origin = spec.origin if spec is not None and spec.submodule_search_locations is not None else None
    if origin is not None and os.path.isfile(origin):
        return Path(origin).parent.joinpath(name).read_text(encoding="utf-8")
    from importlib import resources

    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def _plugin_table(data: dict[str, Any]) -> PluginTable:
    source, read, models = data.get("source"), data.get("read"), data.get("models", {})
    if not isinstance(source, str) or not source.startswith("https://"):
        raise ValueError("source must be the https:// URL of the provider's rate-limit page")
    if not isinstance(read, datetime.date) or isinstance(read, datetime.datetime):
        raise ValueError("read must be the date the page was read, e.g. read = 2026-12-07")
    if not isinstance(models, dict) or not all(isinstance(row, dict) for row in models.values()):
        raise ValueError('models must hold [models."MODEL"] tables')
    for model, row in models.items():
        for key, value in row.items():
            if key not in LIMIT_FIELDS or isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"models.{model!r}: {key} = {value!r} is not one of {', '.join(LIMIT_FIELDS)} "
                                 "set to a whole number of at least 1")
    return PluginTable(source, read.isoformat(), models)


@dataclass(frozen=True)
class Limit:
    """One limit of a model and where it comes from (value and source None: no table limits it)."""

    value: int | None
    source: Source | None


@dataclass(frozen=True)
class ResolvedLimits:
    """The limits a model is held to per key, each with its source (`resolve_limits`).

    Attributes:
        model: the model ID.
        limits: per field of `LIMIT_FIELDS`, its `Limit`.
        known: the plugin's table or keycycle's has the model (False: `DEFAULT_LIMITS` apply
            where the configuration sets no limit).
    """

    model: str
    limits: Mapping[str, Limit]
    known: bool

    def value(self, name: str) -> int | None:
        """The limit `name` (``"rpm"``...), None when nothing limits it."""
        return self.limits[name].value

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """A JSON-ready view: ``{"rpm": {"value": 30, "source": "plugin"}, ...}``."""
        return {name: {"value": limit.value, "source": limit.source} for name, limit in self.limits.items()}


def resolve_limits(spec: ProviderSpec, model: str, configured: Mapping[str, int] | None = None) -> ResolvedLimits:
    """The limits `model` of `spec`'s provider is held to per key, each from the first that sets it:
    `configured` (the configuration's ``[providers.NAME.models."MODEL"]``), the plugin's table,
    keycycle's table (its exact rows, and for OpenRouter its listed free models), and, for a model
    neither table has, `DEFAULT_LIMITS`. A limit none of them sets is no limit (None)."""
    plugin_row = plugin_table(spec.limits).models.get(model)
    keycycle_row = (known_models(spec.keycycle_name) or {}).get(model)
    layers: list[tuple[Source, Mapping[str, int | None]]] = [
        ("config", configured or {}),
        ("plugin", plugin_row or {}),
        ("keycycle", {name: getattr(keycycle_row, name) for name in LIMIT_FIELDS} if keycycle_row else {}),
    ]
    known = plugin_row is not None or keycycle_row is not None
    if not known:
        layers.append(("default", DEFAULT_LIMITS))
    limits = {}
    for name in LIMIT_FIELDS:
        found = next(((values[name], source) for source, values in layers if values.get(name) is not None),
                     (None, None))
        limits[name] = Limit(*found)
    return ResolvedLimits(model, limits, known)


def key_numbers(spec: ProviderSpec, env: Mapping[str, str], keys: Sequence[str]) -> list[int]:
    """The number (``NAME_API_KEY_<i>``) of each of a pool's `keys`, in their order (1 for a single
    ``NAME_API_KEY``): the pool skips unusable keys, so a key's place is not its number."""
    numbers = {value: int(var.rpartition("_")[2]) for var, value in reversed(declared_keys(spec, env))}
    return [numbers.get(key, 1) for key in keys]


def budgets(groups: Sequence[Iterable[int]], numbers: Sequence[int]) -> tuple[int, ...]:
    """For each key of a pool (`numbers`: their key numbers, in pool order), the place of the key
    whose windows it counts in: the first key of its group in the pool, or itself (no group).
    `groups` holds each group's key numbers (`ProviderConfig.key_group_numbers`).

    Groups that share a key (a configuration `hfs check` reports as an error) are taken as one
    group: a budget counted too widely refuses early, one counted too narrowly eats the
    provider's refusals.
    """
    parent = list(range(len(groups)))

    def root(group: int) -> int:
        while parent[group] != group:
            parent[group] = parent[parent[group]]
            group = parent[group]
        return group

    group_of: dict[int, int] = {}
    for index, group in enumerate(groups):
        for number in group:
            if number in group_of:
                parent[root(group_of[number])] = root(index)
            group_of[number] = index
    first: dict[int, int] = {}
    out = []
    for place, number in enumerate(numbers):
        found = group_of.get(number)
        out.append(place if found is None else first.setdefault(root(found), place))
    return tuple(out)
