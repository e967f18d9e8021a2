"""Settings: the environment (``.env`` under the process's) and the configuration, read once and merged.

Every fact that both decide is computed here, once: the plugins to load, a provider's default model,
the usage database, the shared state. An ``HFS_*`` variable set to an empty string counts as unset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from hfs_core.config import Config, load_config, looks_like_db_url, looks_like_state_url, project_dirs
from hfs_core.env import load_env
from hfs_core.plugin import Problem, ProviderSpec
from hfs_core.variables import DB_URL_ENV, DB_URL_ENVS, PLUGINS_ENV, STATE_SECRET_ENV, STATE_URL_ENV

USAGE_FIXES = (f"set {DB_URL_ENVS[0]} (or {DB_URL_ENV}) or usage_db_url to a database, track_usage = false to "
               "record no usage, or XDG_DATA_HOME to a writable folder")
"""What the user can do when the data folder cannot hold the usage database or its spool."""
_CREDENTIALS = ("username", "password", "ssl_password")
"""Query arguments of a state URL that redis-py takes as credentials (hidden wherever the URL is shown)."""


def data_dir() -> Path:
    """The user data folder (``$XDG_DATA_HOME/hfs-providers`` on Linux): the default usage database and
    the spool of rows waiting for a database that is down. Not created here (the usage store creates it)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("hfs-providers", appauthor=False))


def default_usage_url() -> str:
    """The SQLite file used when no database URL is configured (in the user data folder, `data_dir`)."""
    return f"sqlite:///{data_dir() / 'usage.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    """The environment and the configuration of one registry.

    Attributes:
        env: the variables read (``.env`` under the process environment, or the ones given).
        config: the configuration (``hfs.toml``, ``[tool.hfs]``, ``$HFS_CONFIG``, or the one given).
        env_file: the ``.env`` file read (the first searched upward from the working directory,
            `project_dirs`; None: none, or `env` was given).
    """

    env: Mapping[str, str]
    config: Config
    env_file: Path | None = None

    @classmethod
    def load(cls, *, env: Mapping[str, str] | None = None, config: Config | None = None,
             problems: list[Problem]) -> Settings:
        """Read ``.env`` and the process environment (unless `env` is given) and the configuration found
        on disk (unless `config` is given); what is wrong with them is added to `problems`."""
        env_file = None
        if env is None:
            env_file = next((d / ".env" for d in project_dirs() if (d / ".env").is_file()), None)
            values = load_env(env_file, problems=problems)  # None: no .env (not even in the cwd)
        else:
            values = dict(env)
        return cls(values, load_config(env=values) if config is None else config, env_file)

    def var(self, name: str) -> str:
        """Variable `name`, stripped ("" when unset)."""
        return (self.env.get(name) or "").strip()

    def plugin_filter(self, plugins: Sequence[str] | None) -> set[str] | None:
        """The only plugins to load: `plugins`, else ``$HFS_PLUGINS``, else the configuration's (None: all)."""
        if plugins is not None:
            return set(plugins)
        raw = self.var(PLUGINS_ENV)
        if raw:
            return {p.strip() for p in raw.split(",") if p.strip()}
        return set(self.config.plugins) if self.config.plugins is not None else None

    @property
    def plugins_source(self) -> str:
        """Where the list of plugins to load comes from, for messages."""
        return PLUGINS_ENV if self.var(PLUGINS_ENV) else self.config.source_name

    def default_model(self, spec: ProviderSpec) -> str:
        """The model a call to the provider of `spec` uses when it names none: the configured
        ``default_model``, else the plugin's."""
        return self.config.provider(spec.name).default_model or spec.default_model

    def db_url_var(self) -> str | None:
        """The variable that names the usage database (``HFS_USAGE_DB_URL``, else ``TIDB_DB_URL``), if one is set."""
        return next((var for var in DB_URL_ENVS if self.var(var)), None)

    def usage_url(self) -> str | None:
        """The usage database URL in effect (None when usage tracking is off)."""
        if not self.config.track_usage:
            return None
        var = self.db_url_var()
        url = self.var(var) if var else self.config.usage_db_url
        return url if url and looks_like_db_url(url) else default_usage_url()

    def named_state_url(self) -> str | None:
        """The URL ``HFS_STATE_URL`` (else ``[state] url``) names, usable or not; None: neither is set."""
        return self.var(STATE_URL_ENV) or self.config.state.url

    @property
    def state_source(self) -> str:
        """Where the shared state's URL comes from, for messages: the variable or the file."""
        return STATE_URL_ENV if self.var(STATE_URL_ENV) else f"[state] url in {self.config.source_name}"

    @property
    def state_secret_usable(self) -> bool:
        """Whether ``HFS_STATE_SECRET`` (if set) can key a hash: text, not bytes that are not UTF-8."""
        try:
            self.var(STATE_SECRET_ENV).encode()
        except UnicodeEncodeError:
            return False
        return True

    def state_url(self) -> str | None:
        """The shared state's URL (``HFS_STATE_URL``, else ``[state] url``) when redis-py can use it and
        the secret is usable; None: each process keeps its own (`hfs check` says why, when a URL is named)."""
        url = self.named_state_url()
        if not url or not looks_like_state_url(url) or not self.state_secret_usable:
            return None
        return url if state_url_problem(url) is None else None

    def state_info(self, up: bool | None = None) -> dict[str, Any]:
        """Where the pools keep their state, safe to show: ``kind`` ("redis" or "in-process"), ``url``
        (credentials hidden), ``source`` (the variable or file that names it), ``namespace``, ``up``
        (whether Redis answered last, as given)."""
        url = self.state_url()
        if url is None:
            return {"kind": "in-process", "url": None, "source": None, "namespace": None, "up": None}
        return {"kind": "redis", "url": shown_state_url(url), "source": self.state_source,
                "namespace": self.config.state.namespace, "up": up}


def shown_state_url(url: str) -> str:
    """`url` as it may be shown: every credential redis-py takes from it (the ``user:password@`` part,
    the ``username``, ``password`` and ``ssl_password`` arguments) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed IPv6 host: show nothing of a string that may hold a secret
        return "<unparsable URL>"
    userinfo, at, host = parts.netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        host = f"{'***' if user else ''}{':***' if colon else ''}@{host}"
    query = urlencode([(name, "***" if name in _CREDENTIALS else value)
                       for name, value in parse_qsl(parts.query, keep_blank_values=True)], safe="*/")
    return f"{parts.scheme}://{host}{parts.path}{'?' if query else ''}{query}"  # unix:// keeps its empty host


def state_url_problem(url: str) -> str | None:
    """Why redis-py cannot use `url` as written (None: it can, or the redis client is not installed to
    tell). Never holds the URL's credentials."""
    try:
        from redis.connection import ConnectionPool
        from redis.exceptions import RedisError
    except ImportError:
        return None
    try:
        pool = ConnectionPool.from_url(url)
        pool.connection_class(**pool.connection_kwargs)  # an argument it does not take; no connection is made
        str(pool.connection_kwargs.get("host") or "").encode("idna")  # as the resolver will
    except (ValueError, TypeError, RedisError) as exc:  # UnicodeError (a host name too long) is a ValueError
        text = str(exc)
        for secret in _secrets(url):
            text = text.replace(secret, "***")
        return text
    parts = urlsplit(url)
    database = unquote(parts.path).strip("/")
    if parts.scheme != "unix" and database and not re.fullmatch(r"[0-9]+", database):
        return (f"its path is not a database number (redis-py would use database {pool.connection_kwargs.get('db', 0)}"
                "); end it with the number, e.g. /0")
    return None


def _secrets(url: str) -> list[str]:
    """The credentials written in `url` (to keep them out of an error message)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed IPv6 host: its message names no part of the URL
        return []
    found = [value for name, value in parse_qsl(parts.query) if name in _CREDENTIALS and value]
    return [*found, *(value for value in (parts.username, parts.password) if value)]
