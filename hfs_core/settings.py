"""Settings: the environment (``.env`` under the process's) and the configuration, read once and merged.

Every fact that both decide is computed here, once: the plugins to load, a provider's default model,
the usage database, the shared state. An ``HFS_*`` variable set to an empty string counts as unset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfs_core.config import Config, load_config, looks_like_db_url, looks_like_state_url, project_dirs
from hfs_core.env import load_env
from hfs_core.plugin import Problem, ProviderSpec

PLUGINS_ENV = "HFS_PLUGINS"
DB_URL_ENV = "TIDB_DB_URL"
DB_URL_ENVS = ("HFS_USAGE_DB_URL", DB_URL_ENV)
"""The variables that name the usage database, the first set one winning (``TIDB_DB_URL``: keycycle's name)."""
STATE_URL_ENV = "HFS_STATE_URL"
STATE_SECRET_ENV = "HFS_STATE_SECRET"
USAGE_FIXES = ("set TIDB_DB_URL or usage_db_url to a database, track_usage = false to record no usage, "
               "or XDG_DATA_HOME to a writable folder")
"""What the user can do when the data folder cannot hold the usage database or its spool."""


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
        env_file: the ``.env`` file read (the first in the working directory or its parents, up to
            the project's root; None: none, or `env` was given).
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

    def state_url(self) -> str | None:
        """The shared state's URL (``HFS_STATE_URL``, else ``[state] url``); None: each process keeps its own."""
        url = self.var(STATE_URL_ENV) or self.config.state.url
        return url if url and looks_like_state_url(url) else None

    def state_info(self, up: bool | None = None) -> dict[str, Any]:
        """Where the pools keep their state, safe to show: ``kind`` ("redis" or "in-process"), ``url``
        (password hidden), ``source`` (the variable or file that names it), ``namespace``, ``up``
        (whether Redis answered last, as given)."""
        url = self.state_url()
        if url is None:
            return {"kind": "in-process", "url": None, "source": None, "namespace": None, "up": None}
        from hfs_core.usage.redact import redact_url

        source = STATE_URL_ENV if self.var(STATE_URL_ENV) else f"[state] url in {self.config.source_name}"
        return {"kind": "redis", "url": redact_url(url), "source": source, "namespace": self.config.state.namespace,
                "up": up}
