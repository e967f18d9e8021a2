"""keycycle's model tables, read from its data files without importing keycycle.

keycycle keeps per-provider limit tables (``config/models/<provider>.yaml``: model ID to
RPM/RPH/RPD/TPM/TPH/TPD, plus a ``default`` row) and, for OpenRouter, a list of free
models. Importing keycycle costs a database layer and a logging set-up; `hfs check` and
`hfs models` only need the tables, so they are read here with PyYAML (keycycle's own
reader), loaded on first use. The key pools take their limits from here too
(`model_limits`): one source, resolved as keycycle resolves them.

The environment check only asks whether a model is in the tables (`is_known_model`); it
must not pay for PyYAML (tens of milliseconds), so it scans the files for model IDs
alone: the table's top-level keys and the list's ``id`` entries. Tests check that the
scan finds exactly the models PyYAML reads.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def model_limits(provider: str, model: str) -> ModelLimits | None:
    """The limits keycycle applies to `model`: its row, else the provider's ``default`` row.

    None when keycycle has neither (keycycle then applies 10/min, 100/h, 1000/day).
    """
    table = limit_table(provider) or {}
    return table.get(model, table.get("default"))


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


def is_known_model(provider: str, model: str) -> bool | None:
    """True or False when keycycle has a table for `provider`, None when it has none."""
    names = model_names(provider)
    return None if names is None else model in names
