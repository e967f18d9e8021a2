"""keycycle's model tables, read from its data files without importing keycycle.

keycycle keeps per-provider limit tables (``config/models/<provider>.yaml``: model ID to
RPM/RPH/RPD/TPM/TPH/TPD, plus a ``default`` row) and, for OpenRouter, a list of free
models. Importing keycycle costs a database layer and a logging set-up; `hfs check` and
`hfs models` only need the tables, so they are read here as the simple YAML they are.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

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


def _parse_limits(text: str) -> dict[str, ModelLimits]:
    rows: dict[str, dict[str, int]] = {}
    current: dict[str, int] | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        top = re.match(r"^(\S[^:]*):\s*$", line)
        if top:
            current = rows.setdefault(top.group(1).strip().strip("'\""), {})
            continue
        field = re.match(r"^\s+(\w+):\s*(\d+)\s*$", line)
        if field and current is not None and field.group(1) in _FIELDS:
            current[_FIELDS[field.group(1)]] = int(field.group(2))
    return {model: ModelLimits(model, **values) for model, values in rows.items()}


@functools.cache
def limit_table(provider: str) -> dict[str, ModelLimits] | None:
    """keycycle's limits for `provider` (``default`` included), or None if keycycle has no table."""
    directory = _models_dir()
    if directory is None or not (directory / f"{provider}.yaml").is_file():
        return None
    return _parse_limits((directory / f"{provider}.yaml").read_text(encoding="utf-8"))


@functools.cache
def model_list(provider: str) -> tuple[str, ...]:
    """Model IDs keycycle lists for `provider` beyond its limit table (OpenRouter's free models)."""
    directory = _models_dir()
    path = directory / f"{provider}_models.yaml" if directory else None
    if path is None or not path.is_file():
        return ()
    return tuple(re.findall(r"^\s*-?\s*id:\s*(\S+)\s*$", path.read_text(encoding="utf-8"), re.MULTILINE))


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


def is_known_model(provider: str, model: str) -> bool | None:
    """True or False when keycycle has a table for `provider`, None when it has none."""
    models = known_models(provider)
    return None if models is None else model in models
