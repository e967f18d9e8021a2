"""The TOML configuration: ``hfs.toml``, ``[tool.hfs]`` in ``pyproject.toml``, or ``$HFS_CONFIG``.

The files are searched upward: the working directory and its parents, up to the repository's root
(`project_dirs`).

Example ``hfs.toml``::

    plugins = ["groq", "gemini"]          # load only these plugins (default: all installed)
    usage_db_url = "mysql+pymysql://user:pass@host/db"   # TIDB_DB_URL wins when set
    track_usage = true

    [providers.groq]
    enabled = true
    default_model = "openai/gpt-oss-20b"
    expected_keys = 16
    base_url = "http://127.0.0.1:8000"     # a proxy or a local stand-in
    plugin = "hfs-provider-groq"           # which distribution serves groq when two claim it
    connect_timeout = 5.0                  # seconds to connect, per attempt
    read_timeout = 30.0                    # seconds between two pieces of an answer (idle)
    key_groups = [[1, 2, 3], ["4-10"]]     # keys (NAME_API_KEY_<i>) that share each limit as one budget

    [providers.groq.models."openai/gpt-oss-20b"]
    rpm = 30                               # per key: rpm, rph, rpd (requests), tpm, tph, tpd (tokens)
    tpm = 8000                             # in place of keycycle's table (any provider, any model)

    [tiers.fast]                           # get_model("fast"): the first entry that can serve each call
    models = ["groq:openai/gpt-oss-20b", "cerebras:gpt-oss-120b", "gemini"]   # "gemini": its default model

    [state]                                # pools shared by every process on one Redis
    url = "redis://127.0.0.1:6379/0"       # HFS_STATE_URL wins when set; none: in-process state
    namespace = "hfs"                      # first part of every Redis key (several fleets, one Redis)
    lease_seconds = 30.0                   # a dead process's reservations end after this long (1 to 3600)
    timeout = 0.5                          # seconds one Redis call may take before the process serves alone
                                           # (0.01 to 30, at most half of lease_seconds)

A value that might be a secret (a key pasted in the wrong place) is never echoed in an error.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfs_core.errors import ConfigError
from hfs_core.plugin import MAX_KEY_COUNT, shown_name
from hfs_core.variables import CONFIG_ENV

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

_TOP_KEYS = {"plugins", "usage_db_url", "track_usage", "providers", "state", "tiers"}
_TIER_KEYS = {"models"}
_PROVIDER_KEYS = {"enabled", "default_model", "expected_keys", "base_url", "plugin", "connect_timeout",
                  "read_timeout", "models", "key_groups"}
_LIMIT_KEYS = {"rpm", "rph", "rpd", "tpm", "tph", "tpd"}
_STATE_KEYS = {"url", "namespace", "lease_seconds", "timeout"}
_STATE_SECONDS = {"lease_seconds": (30.0, 1.0, 3600.0), "timeout": (0.5, 0.01, 30.0)}
"""Each ``[state]`` duration: its default, least and greatest value, in seconds."""
STATE_SCHEMES = ("redis", "rediss", "unix")
"""URL schemes of a shared state (any server that speaks the Redis protocol: Redis, Valkey)."""


@dataclass(frozen=True, order=True)
class KeyRange:
    """Key numbers ``first`` to ``last`` (1-based, as in ``NAME_API_KEY_<i>``) in a key group."""

    first: int
    last: int

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"

    @property
    def numbers(self) -> range:
        """The key numbers it holds."""
        return range(self.first, self.last + 1)


KeyGroup = tuple[KeyRange, ...]
"""One ``key_groups`` entry: keys that share each limit of a model's table as one budget."""


@dataclass(frozen=True)
class ProviderConfig:
    """Per-provider settings; None means "use the plugin's default"."""

    enabled: bool = True
    default_model: str | None = None
    expected_keys: int | None = None
    base_url: str | None = None
    plugin: str | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None
    models: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Per-model limits (``rpm``, ``rph``, ``rpd``, ``tpm``, ``tph``, ``tpd``), in place of keycycle's."""
    key_groups: tuple[KeyGroup, ...] = ()
    """``key_groups = [[1, 2, 3], ["4-10"]]``: keys that share one budget (a key in none is its own)."""

    @property
    def key_group_numbers(self) -> tuple[tuple[int, ...], ...]:
        """Each key group's key numbers, its ranges spelt out."""
        return tuple(tuple(n for item in group for n in item.numbers) for group in self.key_groups)


@dataclass(frozen=True)
class StateConfig:
    """Where pools keep their state: ``url`` None means in this process."""

    url: str | None = None
    namespace: str = "hfs"
    lease_seconds: float = 30.0
    timeout: float = 0.5


def looks_like_state_url(url: str) -> bool:
    """True for ``redis://``, ``rediss://`` and ``unix://`` URLs."""
    scheme, sep, rest = url.partition("://")
    return bool(sep) and scheme.lower() in STATE_SCHEMES and " " not in rest


def looks_like_db_url(url: str) -> bool:
    """True for ``scheme://...`` URLs of the kind SQLAlchemy takes."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://\S*$", url) is not None


def _described(value: Any) -> str:
    """A configuration value for an error message: short values as they are, long strings by
    their length only (a long string may be a key pasted in the wrong place)."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 12 else f"a {len(value)}-character string"
    if isinstance(value, bool | int | float):
        return repr(value)
    return f"a {type(value).__name__}"


@dataclass(frozen=True)
class Config:
    """Everything read from the configuration file (all defaults when there is none)."""

    source: Path | None = None
    plugins: tuple[str, ...] | None = None
    usage_db_url: str | None = None
    track_usage: bool = True
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    state: StateConfig = field(default_factory=StateConfig)
    tiers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """``[tiers.NAME] models = ["provider:model", ...]``, in order of preference ("provider" alone: its
    default model). None named: the registry's default tiers."""

    def provider(self, name: str) -> ProviderConfig:
        """The settings for `name` (defaults if the file says nothing about it)."""
        return self.providers.get(name, ProviderConfig())

    @property
    def source_name(self) -> str:
        """The file's name as shown in messages."""
        return str(self.source) if self.source else "(no config file)"


def find_config(cwd: Path | None = None, env: Mapping[str, str] | None = None) -> tuple[Path, bool] | None:
    """The config file to read and whether it is a pyproject.toml, or None if there is none."""
    env = os.environ if env is None else env
    explicit = (env.get(CONFIG_ENV) or "").strip()  # empty means unset, like every HFS_* variable
    if explicit:
        path = Path(explicit)
        try:
            found = path.is_file()
        except OSError as exc:  # a name longer than the system takes, say: described, never echoed
            raise ConfigError(f"{CONFIG_ENV}: is a {len(explicit)}-character path that cannot be opened "
                              f"({exc.strerror}); point {CONFIG_ENV} at an hfs.toml") from None
        if not found:
            raise ConfigError(f"{CONFIG_ENV}={explicit}: no such file; point {CONFIG_ENV} at an hfs.toml")
        return path, path.name == "pyproject.toml"
    for base in project_dirs(cwd):
        if (base / "hfs.toml").is_file():
            return base / "hfs.toml", False
        pyproject = base / "pyproject.toml"
        if pyproject.is_file() and _has_tool_hfs(pyproject):
            return pyproject, True
    return None


def _has_tool_hfs(pyproject: Path) -> bool:
    """Whether `pyproject` holds ``[tool.hfs]`` (True too when it cannot be read or parsed but names a
    ``[tool...]`` table: `load_config` then says what is wrong with it). A workspace member's
    ``pyproject.toml`` without it does not stop the search for the root's ``hfs.toml``."""
    raw = pyproject.read_bytes()
    if not re.search(rb"(?m)^\s*(\[\s*tool\b|tool\s*[.=])", raw):
        return False
    try:
        tool = tomllib.loads(raw.decode("utf-8")).get("tool")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return True
    return not isinstance(tool, dict) or "hfs" in tool


def project_dirs(start: Path | None = None) -> list[Path]:
    """Where to look for ``hfs.toml`` and ``.env``, searched upward: `start` (the working directory)
    and its parents up to the repository's root, the first that holds ``.git`` (past a workspace
    member's ``pyproject.toml``); outside a repository, up to the first that holds ``pyproject.toml``;
    every parent when there is neither."""
    here = (Path.cwd() if start is None else start).resolve()
    chain = [here, *here.parents]
    for marker in (".git", "pyproject.toml"):
        root = next((at for at, directory in enumerate(chain) if (directory / marker).exists()), None)
        if root is not None:
            return chain[:root + 1]
    return chain


def load_config(cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Find and read the configuration; raise ConfigError naming the file on any problem."""
    found = find_config(cwd, env)
    if found is None:
        return Config()
    path, is_pyproject = found
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        detail = str(exc)
        if "(at line" not in detail:  # tomllib says "at end of document" for unclosed arrays and strings
            detail += f" (line {len(text.splitlines()) or 1} is the last)"
        raise ConfigError(f"{path}: not valid TOML: {detail}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    if is_pyproject:
        tool = data.get("tool", {})
        if not isinstance(tool, dict) or "hfs" not in tool:
            return Config()
        data = tool["hfs"]
        where = "[tool.hfs]"
        if not isinstance(data, dict):
            raise _fail(path, where, f"must be a table of settings, got {_described(data)}")
    else:
        where = ""
    return parse_config(data, path, where)


def _fail(path: Path, where: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {where + ' ' if where else ''}{message}")


def _check_keys(table: Mapping[str, Any], known: set[str], path: Path, where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise _fail(path, where, f"unknown setting {shown_name(unknown[0])!r} (known: {', '.join(sorted(known))})")


def parse_config(data: Mapping[str, Any], path: Path, where: str = "") -> Config:
    """Validate the parsed TOML and build a Config."""
    _check_keys(data, _TOP_KEYS, path, where)
    plugins = data.get("plugins")
    if plugins is not None and not (isinstance(plugins, list) and all(isinstance(p, str) for p in plugins)):
        raise _fail(path, where, "plugins must be a list of plugin names, e.g. plugins = [\"groq\"]")
    db_url = data.get("usage_db_url")
    if db_url is not None and (not isinstance(db_url, str) or not looks_like_db_url(db_url.strip())):
        raise _fail(path, where, f"usage_db_url must be a string holding a SQLAlchemy database URL such as "
                    f"sqlite:////var/lib/hfs/usage.sqlite3 or mysql+pymysql://user:password@host:4000/db, "
                    f"got {_described(db_url)}")
    track = data.get("track_usage", True)
    if not isinstance(track, bool):
        raise _fail(path, where, "track_usage must be true or false")
    tables = data.get("providers", {})
    if not isinstance(tables, dict):
        raise _fail(path, where, "providers must be a table of [providers.<name>] tables")
    providers = {name: _provider(name, table, path, where) for name, table in tables.items()}
    tiers = data.get("tiers", {})
    if not isinstance(tiers, dict):
        raise _fail(path, where, 'tiers must be a table of [tiers.<name>] tables, e.g. [tiers.fast] '
                    'models = ["groq:openai/gpt-oss-20b"]')
    return Config(
        source=path,
        plugins=tuple(plugins) if plugins is not None else None,
        usage_db_url=db_url.strip() if db_url else None,
        track_usage=track,
        providers=providers,
        state=_state(data.get("state", {}), path, f"{where} [state]".strip()),
        tiers={name: _tier(name, table, path, where) for name, table in tiers.items()},
    )


def _state(table: Any, path: Path, section: str) -> StateConfig:
    """``[state]``: where pools keep their state."""
    if not isinstance(table, dict):
        raise _fail(path, "", f"{section} must be a table, e.g. [state] url = \"redis://127.0.0.1:6379/0\"")
    _check_keys(table, _STATE_KEYS, path, section)
    url = table.get("url")
    if url is not None and (not isinstance(url, str) or not looks_like_state_url(url.strip())):
        raise _fail(path, section, f"url must be a redis://, rediss:// or unix:// URL such as "
                    f"redis://127.0.0.1:6379/0, got {_described(url)}")
    namespace = table.get("namespace", "hfs")
    if not isinstance(namespace, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", namespace):
        raise _fail(path, section, "namespace must be 1 to 40 letters, digits, '_', '.' or '-', "
                    f"got {_described(namespace)}")
    seconds = {}
    for name, (default, least, most) in _STATE_SECONDS.items():
        value = table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not least <= value <= most:
            raise _fail(path, section, f"{name} must be a number of seconds from {least:g} to {most:g}, "
                        f"got {_described(value)}")
        seconds[name] = float(value)
    if seconds["lease_seconds"] < 2 * seconds["timeout"]:
        raise _fail(path, section, f"lease_seconds must be at least twice timeout (renewing a lease may take "
                    f"timeout), got {seconds['lease_seconds']:g} and "
                    f"{seconds['timeout']:g}")
    return StateConfig(url=url.strip() if url else None, namespace=namespace, **seconds)


def _tier(name: str, table: Any, path: Path, where: str) -> tuple[str, ...]:
    """``[tiers.NAME] models = [...]``: "provider:model" (or "provider") strings, in order of preference."""
    section = f"{where} [tiers.{shown_name(name)}]".strip()
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name):
        raise _fail(path, "", f"{section}: a tier's name is lower-case letters, digits, '-' or '_' (e.g. fast)")
    if not isinstance(table, dict):
        raise _fail(path, "", f"{section} must be a table holding models = [...]")
    _check_keys(table, _TIER_KEYS, path, section)
    models = table.get("models")
    if not isinstance(models, list) or not models:
        raise _fail(path, section, 'models must be a non-empty list of "provider:model" strings, '
                    'e.g. models = ["groq:openai/gpt-oss-20b", "cerebras:gpt-oss-120b"]')
    entries: list[str] = []
    for number, entry in enumerate(models, 1):
        provider, colon, model = entry.partition(":") if isinstance(entry, str) else ("", "", "")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", provider.strip()) or (colon and not model.strip()):
            raise _fail(path, section, f'entry {number} must be "provider:model" (or "provider" for its default '
                        f'model), e.g. "groq:openai/gpt-oss-20b"; got {_described(entry)}')
        text = f"{provider.strip()}:{model.strip()}" if colon else provider.strip()
        if text in entries:
            raise _fail(path, section, f"entry {number} repeats entry {entries.index(text) + 1}; list each entry once")
        entries.append(text)
    return tuple(entries)


def _provider(name: str, table: Any, path: Path, where: str) -> ProviderConfig:
    section = f"{where} [providers.{shown_name(name)}]".strip()
    if not isinstance(table, dict):
        raise _fail(path, "", f"{section} must be a table")
    _check_keys(table, _PROVIDER_KEYS, path, section)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _fail(path, section, "enabled must be true or false")
    model = table.get("default_model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise _fail(path, section, "default_model must be a non-empty string")
    expected = table.get("expected_keys")
    if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int) or expected < 1):
        raise _fail(path, section, f"expected_keys must be a whole number of at least 1, got {_described(expected)}")
    base_url = table.get("base_url")
    if base_url is not None and (not isinstance(base_url, str) or "://" not in base_url):
        raise _fail(path, section, f"base_url must be a URL like http://127.0.0.1:8000, got {_described(base_url)}")
    plugin = table.get("plugin")
    if plugin is not None and (not isinstance(plugin, str) or not plugin.strip()):
        raise _fail(path, section, "plugin must name a distribution, e.g. plugin = \"hfs-provider-groq\"")
    waits = {}
    for name in ("connect_timeout", "read_timeout"):
        value = table.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not 0 < value < float("inf")):
            raise _fail(path, section, f"{name} must be a number of seconds above 0, got {_described(value)}")
        waits[name] = float(value) if value is not None else None
    return ProviderConfig(enabled=enabled, default_model=model, expected_keys=expected, base_url=base_url,
                          plugin=plugin.strip() if plugin else None, models=_model_limits(table, path, section),
                          key_groups=_key_groups(table.get("key_groups", []), path, section), **waits)


_KEY_GROUPS_EXAMPLE = 'e.g. key_groups = [[1, 2, 3], ["4-10"]]'


def _key_groups(value: Any, path: Path, section: str) -> tuple[KeyGroup, ...]:
    """``key_groups``: a list of groups, each a list of key numbers (1-based) or ``"first-last"`` ranges.
    Only the shape is checked here; a number beyond the keys or in two groups is `hfs check`'s
    finding (`checks.key_group_problems`)."""
    if not isinstance(value, list):
        raise _fail(path, section, f"key_groups must be a list of groups of key numbers, {_KEY_GROUPS_EXAMPLE}")
    groups: list[KeyGroup] = []
    for index, group in enumerate(value):
        if not isinstance(group, list) or not group:
            raise _fail(path, section, f"key_groups[{index}] must be a non-empty list of key numbers or "
                        f'"first-last" ranges, {_KEY_GROUPS_EXAMPLE}; got {_described(group)}')
        groups.append(tuple(_key_range(item, f"key_groups[{index}]", path, section) for item in group))
    return tuple(groups)


def _key_range(item: Any, where: str, path: Path, section: str) -> KeyRange:
    """One item of a key group: a whole number of at least 1, or a ``"first-last"`` string."""
    if isinstance(item, int) and not isinstance(item, bool) and 1 <= item <= MAX_KEY_COUNT:
        return KeyRange(item, item)
    found = re.fullmatch(r"\s*(\d{1,6})\s*(?:-\s*(\d{1,6})\s*)?", item) if isinstance(item, str) else None
    if found:
        first, last = int(found.group(1)), int(found.group(2) or found.group(1))
        if 1 <= first <= last <= MAX_KEY_COUNT:
            return KeyRange(first, last)
    raise _fail(path, section, f"{where} holds {_described(item)}: each item is a key number from 1 to "
                f'{MAX_KEY_COUNT} (1 for NAME_API_KEY_1) or a range of them such as "1-10" (first no higher '
                "than last)")


def _model_limits(table: Mapping[str, Any], path: Path, section: str) -> dict[str, dict[str, int]]:
    """``[providers.NAME.models."MODEL"]`` tables: limits in LiteLLM's vocabulary (rpm, tpm, ...)."""
    models = table.get("models", {})
    if not isinstance(models, dict):
        raise _fail(path, section, 'models must be a table of [providers.NAME.models."MODEL"] tables')
    limits: dict[str, dict[str, int]] = {}
    for model, values in models.items():
        shown = model if ("/" in model or ":" in model) and len(model) <= 100 else shown_name(model)  # not a key
        where = f'{section} models."{shown}"'
        if not isinstance(values, dict) or not values:
            raise _fail(path, where, "must be a table of limits, e.g. rpm = 30, tpm = 8000")
        _check_keys(values, _LIMIT_KEYS, path, where)
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise _fail(path, where, f"{name} must be a whole number of at least 1, got {_described(value)}")
        limits[model] = dict(values)
    return limits
