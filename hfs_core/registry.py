"""The registry: finds provider plugins, checks their environment, and hands out rotating models.

Discovery and environment checks import neither agno, keycycle nor any provider SDK;
a provider's pool (and with it those packages) is built the first time it is needed.
One plugin that fails to import, raises in a hook or returns the wrong thing is
recorded as a failed plugin and never stops the others.
"""

from __future__ import annotations

import atexit
import difflib
import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfs_core import catalog
from hfs_core.config import Config, load_config, looks_like_db_url, looks_like_state_url, project_dirs
from hfs_core.discovery import HOOK_TIMEOUT, PluginFault, PluginInfo, Plugins, describe, in_plugin_code
from hfs_core.env import EnvReport, SecretMask, check_provider_env, load_env
from hfs_core.errors import HFSError, ProviderNotFoundError, ProviderUnavailableError
from hfs_core.install import CORE, install_command, plugin_command
from hfs_core.plugin import Problem, ProviderSpec, Timeouts, shown_name

if TYPE_CHECKING:
    from hfs_core.call import ClientCache
    from hfs_core.pool import KeyPool
    from hfs_core.pool.shared import RedisLink, StateProbe
    from hfs_core.usage import UsageHealth, UsageStore

log = logging.getLogger("hfs_core")

PLUGINS_ENV = "HFS_PLUGINS"
DB_URL_ENV = "TIDB_DB_URL"
DB_URL_ENVS = ("HFS_USAGE_DB_URL", DB_URL_ENV)
"""The variables that name the usage database, the first set one winning (``TIDB_DB_URL``: keycycle's name)."""
STATE_URL_ENV = "HFS_STATE_URL"
STATE_SECRET_ENV = "HFS_STATE_SECRET"
HISTORY_SECONDS = 86400
DEFAULT_TIERS = ("reasoning", "general", "fast")
"""The tiers HFS asks for. With no ``[tiers]`` in the configuration each lists every loaded provider's
default model, in the order of the providers' names (the order `get_any_model` uses too)."""
ANY_TIER = "any"
"""The name `get_any_model`'s tier goes by."""
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


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`base` updated with `override`, nested dicts merged (a caller's ``client_params`` keeps
    the plugin's retry and base URL settings it does not name)."""
    merged = dict(base)
    for key, value in override.items():
        old = merged.get(key)
        merged[key] = _merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return merged


def _seconds(provider: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise TypeError(f"get_model({provider!r}): {name} must be a number of seconds above 0, got {value!r}")
    return float(value)


def _sdk_kwargs(spec: ProviderSpec, base_url: str | None, timeouts: Timeouts) -> dict[str, Any]:
    """The plugin's `sdk_options` for `base_url` and `timeouts` (an older one takes only the URL)."""
    try:
        takes_timeouts = len(inspect.signature(spec.sdk_options).parameters) >= 2
    except (TypeError, ValueError):
        takes_timeouts = False
    return spec.sdk_options(base_url, timeouts) if takes_timeouts else spec.sdk_options(base_url)


@dataclass(frozen=True)
class TierEntry:
    """One entry of a tier, as the registry sees it now.

    Attributes:
        provider: the provider it names.
        model: the model it names (its provider's default model when it names none; "" when the
            provider is unknown).
        problem: why it cannot serve calls (None: it can); the tier's other entries serve them.
        known_model: whether keycycle's tables hold the model (False: its limits fall back to the
            provider's default row; None: not known, the provider is not loaded).
    """

    provider: str
    model: str
    problem: str | None = None
    known_model: bool | None = None

    @property
    def ref(self) -> str:
        """``provider:model``, as `get_model` takes it."""
        return f"{self.provider}:{self.model}" if self.model else self.provider


class Registry:
    """Provider plugins, their environment, and their key pools.

    Args:
        env: variables to read instead of ``.env`` plus the process environment.
        config: configuration to use instead of the one found on disk.
        plugins: names of the only plugins to load (else ``$HFS_PLUGINS``, else config).
        hook_timeout: seconds a plugin's import or hook may take before it counts as failed.
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        config: Config | None = None,
        plugins: Sequence[str] | None = None,
        hook_timeout: float = HOOK_TIMEOUT,
    ) -> None:
        self.problems: list[Problem] = []
        self.env_file: Path | None = None
        """The ``.env`` file read (the first in the working directory or its parents, up to the project's root)."""
        if env is None:
            self.env_file = next((d / ".env" for d in project_dirs() if (d / ".env").is_file()), None)
            self.env = load_env(self.env_file, problems=self.problems)  # None: no .env (not even in the cwd)
        else:
            self.env = dict(env)
        self.mask = SecretMask(self.env)
        """Hides keys in text: every ``*_API_KEY*`` value, and (once plugins load) words shaped like keys."""
        self.config = load_config(env=self.env) if config is None else config
        self._lock = threading.RLock()
        only = self._plugin_filter(plugins)
        picks = {name: p.plugin for name, p in self.config.providers.items() if p.plugin}
        self._discovery = Plugins(only=only, picks=picks, source_name=self.config.source_name,
                                  hook_timeout=hook_timeout, mask=self.mask)
        self._plugins = self._discovery.infos
        self._specs = self._discovery.specs
        self._keys: dict[str, list[str]] = {}
        self._reports: dict[str, EnvReport] = {}
        self._pools: dict[str, KeyPool] = {}
        self._clients: dict[str, ClientCache] = {}  # each pool's SDK clients, shared by its models
        self._pool_errors: dict[str, str] = {}
        self._usage: UsageStore | None = None
        self._usage_ready = False
        self._link: RedisLink | None = None
        self._link_ready = False
        self._warned_models: set[tuple[str, str]] = set()
        self._left_out: set[tuple[str, str]] = set()  # (tier, entry and why) already logged
        self._closed = False
        source = PLUGINS_ENV if (self.env.get(PLUGINS_ENV) or "").strip() else self.config.source_name
        for name in self._discovery.missing:
            self.problems.append(Problem("warning", source, f"names plugin {shown_name(name)!r}, which is not "
                                         "installed", plugin_command(shown_name(name))))
        self._check_environment()
        self._log_start()
        if self.config.track_usage:  # a registry is usually made on the main thread, where this must run
            from hfs_core.usage import catch_sigterm

            catch_sigterm()

    def __repr__(self) -> str:
        return (f"Registry(providers={sorted(self._specs)}, available={self.available_providers}, "
                f"failed_plugins={[p.name for p in self._plugins if p.state == 'failed']})")

    # -- discovery -----------------------------------------------------------------------

    def _plugin_filter(self, plugins: Sequence[str] | None) -> set[str] | None:
        if plugins is not None:
            return set(plugins)
        raw = (self.env.get(PLUGINS_ENV) or "").strip()  # empty means unset, like every HFS_* variable
        if raw:
            return {p.strip() for p in raw.split(",") if p.strip()}
        return set(self.config.plugins) if self.config.plugins is not None else None

    # -- environment ---------------------------------------------------------------------

    def _check_environment(self) -> None:
        prefixes = {name: spec.key_prefix for name, spec in self._specs.items() if spec.key_prefix}
        self.mask = SecretMask(self.env, prefixes.values())
        for name, spec in sorted(self._specs.items()):
            settings = self.config.provider(name)
            expected = settings.expected_keys or spec.expected_keys
            keys, problems = check_provider_env(spec, self.env, expected, prefixes)
            problems.extend(self._plugin_problems(spec))
            model = settings.default_model or spec.default_model
            if catalog.is_known_model(spec.keycycle_name, model) is False and model not in settings.models:
                where = (f"{self.config.source_name} [providers.{name}] default_model" if settings.default_model
                         else f"plugin {name} default_model")
                problems.append(Problem("warning", where, f"{self.mask(repr(model))} is not in keycycle's {name} "
                                        "table; its limits fall back to the provider's default row",
                                        f"see `hfs models {name}` for the models keycycle knows"))
            self._keys[name] = keys
            self._reports[name] = EnvReport(name, settings.enabled, len(keys), expected, tuple(problems))
        installed = sorted(self._specs)
        for name in sorted(set(self.config.providers) - set(self._specs)):
            shown = shown_name(name)
            self.problems.append(Problem(
                "warning", self.config.source_name, f"[providers.{shown}] names no installed provider "
                f"(installed: {', '.join(installed) or 'none'})", f"{plugin_command(shown)}, or remove it"))
        self._unclaimed_counts()
        raw = (self.env.get(STATE_URL_ENV) or "").strip()
        if raw and not looks_like_state_url(raw):
            self.problems.append(Problem("error", STATE_URL_ENV, "is not a redis://, rediss:// or unix:// URL; "
                                         "each process keeps its pools' state to itself",
                                         "e.g. HFS_STATE_URL=redis://127.0.0.1:6379/0, or unset it"))
        elif self.state_url() and importlib.util.find_spec("redis") is None:
            self.problems.append(Problem("error", self.state_info()["source"], "names a shared state, but the redis "
                                         "client is not installed; each process keeps its pools' state to itself",
                                         install_command(CORE, "redis")))
        self._check_tiers()
        var = self.db_url_var()
        url = (self.env.get(var) or "").strip() if var else ""
        if var and not looks_like_db_url(url):
            self.problems.append(Problem(
                "error", var, "is not a database URL; usage goes to the SQLite default instead",
                "use a SQLAlchemy URL such as mysql+pymysql://user:password@host:4000/db"))

    def _unclaimed_counts(self) -> None:
        """Warn about ``NUM_<P>`` variables for which no plugin is installed (one skipped on purpose is fine)."""
        read = {spec.count_var for spec in self._specs.values()}
        installed = {p.name for p in self._plugins} | {p.provider for p in self._plugins if p.provider}
        for var in sorted(v for v in self.env if v.startswith("NUM_") and v not in read):
            name = var[4:].lower()
            if name in installed or not re.fullmatch(r"[a-z][a-z0-9_]*", name) or not self.env[var].strip():
                continue
            self.problems.append(Problem("warning", var, f"no installed plugin reads it (no plugin {name!r})",
                                         f"{plugin_command(name)}, or unset {var}"))

    def _check_tiers(self) -> None:
        """Problems of the configured tiers: an entry that cannot serve (a warning; an error when none can),
        a model keycycle does not know, a tier with a provider's name. The default tiers are not checked:
        their entries' providers report their own problems."""
        for name, refs in self.config.tiers.items():
            where = f"{self.config.source_name} [tiers.{name}]"
            if name in self._specs:
                self.problems.append(Problem("warning", where, f"has the name of provider {name}, which "
                                             f"get_model({name!r}) gives instead", "rename the tier"))
            entries = self.tier_entries(name)
            for index, entry in enumerate(entries):
                shown = self.mask(refs[index])
                if entry.problem is not None:
                    self.problems.append(Problem("warning", where, f"models[{index}] {shown}: {entry.problem}",
                                                 "the tier's other entries serve its calls meanwhile"))
                elif entry.known_model is False and entry.model not in self.config.provider(entry.provider).models:
                    self.problems.append(Problem(
                        "warning", where, f"models[{index}] {shown}: the model is not in keycycle's "
                        f"{entry.provider} table; its limits fall back to the provider's default row",
                        f"see `hfs models {entry.provider}` for the models keycycle knows"))
            if all(entry.problem is not None for entry in entries):
                self.problems.append(Problem("error", where, "has no entry that can serve calls",
                                             "fix the entries named above, or the providers' keys"))

    def _plugin_problems(self, spec: ProviderSpec) -> list[Problem]:
        try:
            found = self._discovery.call(spec.name, "validate_env", spec=spec, env=self.env) or []
        except PluginFault as fault:
            return [Problem("warning", f"plugin {spec.name}", str(fault), "report it to the plugin's authors")]
        if not isinstance(found, list) or not all(isinstance(p, Problem) for p in found):
            return [Problem("warning", f"plugin {spec.name}", "validate_env did not return a list of Problem",
                            "report it to the plugin's authors")]
        return found

    def _log_start(self) -> None:
        for problem in self.problems:
            log.warning("%s", problem)
        enabled = [r for r in self._reports.values() if r.enabled]
        for report in self._reports.values():
            if not report.enabled:
                log.info("%s: disabled in %s", report.provider, self.config.source_name)
                continue
            log.info("%s: %d API keys (expected %d)", report.provider, report.keys_found, report.expected)
            for problem in report.problems:
                log.warning("%s: %s", report.provider, problem)
        log.info("%d/%d providers healthy", sum(r.healthy for r in enabled), len(enabled))

    # -- what is available ----------------------------------------------------------------

    @property
    def plugins(self) -> list[PluginInfo]:
        """Every discovered plugin, loaded, failed or skipped."""
        return list(self._plugins)

    @property
    def specs(self) -> dict[str, ProviderSpec]:
        """The loaded providers' specs by name."""
        return dict(self._specs)

    @property
    def environment_status(self) -> dict[str, EnvReport]:
        """Per provider: enabled, configured, keys found, keys expected, problems."""
        return dict(self._reports)

    @property
    def available_providers(self) -> list[str]:
        """Providers that can serve a call now."""
        return [name for name in sorted(self._specs) if self.is_provider_healthy(name)]

    def is_provider_healthy(self, name: str) -> bool:
        """Installed, enabled, configured without errors, pool buildable, and some key not dead."""
        report = self._reports.get(name)
        if report is None or not report.healthy or name in self._pool_errors:
            return False
        pool = self._pools.get(name)
        return pool is None or pool.status().live > 0

    @property
    def tiers(self) -> dict[str, tuple[str, ...]]:
        """Each tier's entries (``provider:model``), in order of preference: the configuration's, or with
        none there, `DEFAULT_TIERS`, each every loaded provider's default model in name order."""
        if self.config.tiers:
            return dict(self.config.tiers)
        return dict.fromkeys(DEFAULT_TIERS, self._every_default_model())

    @property
    def tiers_source(self) -> str:
        """Where the tiers come from: the configuration file, or ``"default"``."""
        return self.config.source_name if self.config.tiers else "default"

    def _every_default_model(self) -> tuple[str, ...]:
        return tuple(f"{name}:{self.config.provider(name).default_model or spec.default_model}"
                     for name, spec in sorted(self._specs.items()))

    def tier_entries(self, tier: str) -> list[TierEntry]:
        """The entries of `tier` and whether each can serve calls now (``KeyError`` for an unknown tier)."""
        entries = []
        for ref in self.tiers[tier]:
            provider, _, model = ref.partition(":")
            try:
                self._require(provider)
            except HFSError as exc:
                entries.append(TierEntry(provider, model, self.mask(str(exc))))
                continue
            model = model or self.config.provider(provider).default_model or self._specs[provider].default_model
            known = catalog.is_known_model(self._specs[provider].keycycle_name, model)
            entries.append(TierEntry(provider, model, None, known is not False))
        return entries

    def import_problem(self, name: str) -> str | None:
        """Why provider `name` could not be built (its Agno class's package, or a dependency its
        plugin declares, is not installed), found without importing them; None when nothing is missing."""
        spec = self._specs[name]
        package = spec.model_class.partition(":")[0].split(".")[0]
        if importlib.util.find_spec(package) is None:
            return f"{spec.model_class} cannot be imported: {package} is not installed"
        dist = next((p.distribution for p in self._plugins if p.provider == name and p.state == "loaded"), None)
        for requirement in (importlib.metadata.requires(dist) if dist else None) or []:
            found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
            if found is None or ";" in requirement:  # conditional (an extra, a Python version): not checked
                continue
            try:
                importlib.metadata.distribution(found.group())
            except importlib.metadata.PackageNotFoundError:
                return f"{dist} needs {found.group()}, which is not installed"
        return None

    def _require(self, name: str) -> ProviderSpec:
        spec = self._specs.get(name)
        available = ", ".join(self.available_providers) or "none"
        if spec is None and name in self.tiers:
            raise ProviderNotFoundError(f"{name!r} is a tier, not a provider (get_model({name!r}) gives the tier); "
                                        "a tier lists provider models only")
        if spec is None:
            failed = next((p for p in self._plugins if p.name == name and p.state == "failed"), None)
            if failed is not None:
                raise ProviderUnavailableError(
                    f"provider {name!r}: plugin {failed.distribution} failed to load ({failed.error}); "
                    f"available: {available}")
            skipped = any(p.name == name and p.state == "skipped" for p in self._plugins)
            near = difflib.get_close_matches(name, [*self._specs, *self.tiers], n=1)
            hint = (f"it is installed but not loaded: add it to {PLUGINS_ENV} or plugins in the config" if skipped
                    else f"did you mean {near[0]!r}?" if near
                    else f"install its plugin: {plugin_command(shown_name(name))}")
            tiers = f"; tiers: {', '.join(self.tiers)}" if self.tiers else ""
            raise ProviderNotFoundError(f"unknown provider {shown_name(name)!r}; available: {available}{tiers}; "
                                        f"{hint}")
        report = self._reports[name]
        if not report.enabled:
            raise ProviderUnavailableError(
                f"provider {name!r} is disabled in {self.config.source_name} ([providers.{name}] enabled = false)")
        if not report.configured:
            problem = report.errors[0] if report.errors else None
            detail = f"{problem.variable} {problem.message} ({problem.hint})" if problem else "no usable keys"
            raise ProviderUnavailableError(f"provider {name!r} is not configured: {detail}; available: {available}")
        if name in self._pool_errors:
            raise ProviderUnavailableError(f"provider {name!r} cannot start: {self._pool_errors[name]}")
        return spec

    # -- pools and models ---------------------------------------------------------------------

    def db_url_var(self) -> str | None:
        """The variable that names the usage database (``HFS_USAGE_DB_URL``, else ``TIDB_DB_URL``), if one is set."""
        return next((var for var in DB_URL_ENVS if (self.env.get(var) or "").strip()), None)

    def usage_url(self) -> str | None:
        """The usage database URL in effect (None when usage tracking is off)."""
        if not self.config.track_usage:
            return None
        var = self.db_url_var()
        url = (self.env.get(var) or "").strip() if var else self.config.usage_db_url
        return url if url and looks_like_db_url(url) else default_usage_url()

    def usage_store(self) -> UsageStore | None:
        """The usage store, connected on first use (None when tracking is off)."""
        with self._lock:
            if not self._usage_ready:
                self._usage_ready = True
                url = self.usage_url()
                if url is not None:
                    from hfs_core.usage import Spool, UsageStore, catch_sigterm, folder_problem

                    # An unusable data folder costs the spool (rows wait in memory) and, for the
                    # default SQLite file, the database: said once, never a reason to fail a call.
                    folder = data_dir()
                    problem = folder_problem(folder)
                    spool = None if problem else Spool(folder / "spool.sqlite3", url)
                    hint = f"the data folder cannot be used ({problem}): {USAGE_FIXES}" if problem else None
                    self._usage = UsageStore(url, spool=spool, hint=hint)
                    catch_sigterm()
            return self._usage

    def usage_health(self) -> UsageHealth | None:
        """Rows written, waiting and lost so far (None before any pool was built or with tracking off)."""
        return self._usage.health() if self._usage is not None else None

    def state_url(self) -> str | None:
        """The shared state's URL (``HFS_STATE_URL``, else ``[state] url``); None: each process keeps its own."""
        url = (self.env.get(STATE_URL_ENV) or "").strip() or self.config.state.url
        return url if url and looks_like_state_url(url) else None

    def state_info(self) -> dict[str, Any]:
        """Where the pools keep their state, safe to show: ``kind`` ("redis" or "in-process"), ``url``
        (password hidden), ``source`` (the variable or file that names it), ``namespace``, ``up``
        (whether Redis answered last, once a pool has used it)."""
        url = self.state_url()
        if url is None:
            return {"kind": "in-process", "url": None, "source": None, "namespace": None, "up": None}
        from hfs_core.usage.redact import redact_url

        source = STATE_URL_ENV if (self.env.get(STATE_URL_ENV) or "").strip() else \
            f"[state] url in {self.config.source_name}"
        return {"kind": "redis", "url": redact_url(url), "source": source, "namespace": self.config.state.namespace,
                "up": self._link.up if self._link is not None else None}

    def probe_state(self) -> StateProbe | None:
        """Ping the shared state once (None: there is none)."""
        url = self.state_url()
        if url is None:
            return None
        from hfs_core.pool.shared import probe

        return probe(url)

    def _state_link(self) -> RedisLink | None:
        """The link to the shared state, made with the first pool (None: state stays in this process)."""
        if not self._link_ready:
            self._link_ready = True
            url = self.state_url()
            if url is not None:
                shown = self.state_info()["url"]
                settings = self.config.state
                try:
                    from hfs_core.pool.shared import RedisLink

                    self._link = RedisLink(url, shown_url=shown, namespace=settings.namespace,
                                           secret=(self.env.get(STATE_SECRET_ENV) or "").strip() or None,
                                           lease_seconds=settings.lease_seconds, timeout=settings.timeout)
                except Exception as exc:  # never a reason for a pool not to serve
                    hint = f": {install_command(CORE, 'redis')}" if isinstance(exc, ImportError) else ""
                    log.error("shared state %s cannot be used (%s%s); each process keeps its pools' state to "
                              "itself", shown, describe(exc), hint)
        return self._link

    def pool(self, name: str) -> KeyPool:
        """The key pool of provider `name`, built on first use (this imports agno, keycycle and the SDK)."""
        spec = self._require(name)
        pool = self._pools.get(name)
        if pool is not None and not self._closed:  # built: no wait behind another provider's build
            return pool
        with self._lock:
            if self._closed:
                raise HFSError("the registry has been shut down")
            pool = self._pools.get(name)
            if pool is None:
                pool = self._build_pool(spec)
            return pool

    def _build_pool(self, spec: ProviderSpec) -> KeyPool:
        default_model = self.config.provider(spec.name).default_model or spec.default_model
        try:
            from hfs_core.call import ClientCache
            from hfs_core.pool import KeyPool, LocalPoolState, PoolState
            from hfs_core.pool.shared import RedisPoolState

            module_name, _, class_name = spec.model_class.partition(":")
            model_class = getattr(importlib.import_module(module_name), class_name)
            keys = self._keys[spec.name]
            local = LocalPoolState.build(spec, keys, default_model, self.config.provider(spec.name).models)
            link = self._state_link()
            state: PoolState = local if link is None else RedisPoolState(local, link, spec.name, keys)
            usage = self.usage_store()
            pool = KeyPool(spec, keys, state, usage)
            clients = ClientCache(keys, model_class)
        except Exception as exc:
            hint = f"; reinstall it: {plugin_command(spec.name)}" if isinstance(exc, ImportError) else ""
            self._pool_errors[spec.name] = describe(exc) + hint
            log.error("%s: cannot build the key pool: %s", spec.name, self._pool_errors[spec.name])
            raise ProviderUnavailableError(f"provider {spec.name!r} cannot start: {self._pool_errors[spec.name]}") \
                from exc
        if usage is not None:
            rows = usage.history(spec.name, HISTORY_SECONDS)
            used = state.load_history(rows)
            if used:
                log.info("%s: replayed %d usage rows of the last 24 h into the rate windows", spec.name, used)
            out = pool.restore_cooldowns(usage.cooldowns.in_force(spec.name))
            if out:
                log.info("%s: %d keys stay out until their quota resets (seen before a restart)", spec.name, out)
        self._clients[spec.name] = clients
        self._pools[spec.name] = pool
        return pool

    def resolve_model(self, provider: str, model_id: str | None = None) -> tuple[str, str]:
        """The provider name and model id a call to `provider` (or ``"provider:model"``) uses.

        The model is `model_id`, else the one after the colon, else the config's
        ``default_model``, else the plugin's. Raises `ProviderNotFoundError` or
        `ProviderUnavailableError` when the provider cannot serve calls.
        """
        name, _, inline = provider.partition(":")
        name = name.strip().lower()
        spec = self._require(name)
        return name, model_id or inline.strip() or self.config.provider(name).default_model or spec.default_model

    def get_model(self, provider: str, model_id: str | None = None, **kwargs: Any) -> Any:
        """A rotating Agno model for `provider` (or ``"provider:model"``), or for a tier's name one
        Agno model over the tier's entries (`tiers`): each call runs on the first that can serve it.

        Keyword arguments `estimated_tokens` (1000), `wait` (True), `timeout` (10.0 s of
        waiting in all, shared by a tier's entries; ``inf`` waits without limit) and
        `max_retries` (5, per entry) shape how calls wait and retry; `connect_timeout` (5.0 s)
        and `read_timeout` (30.0 s between two pieces of the answer) bound each attempt on the
        wire (also settable per provider in the configuration); every other keyword goes to the
        provider's Agno model class (``base_url``, ``temperature``...; for a tier, to every entry's).
        """
        model_id = model_id or kwargs.pop("id", None)
        tier = provider.strip().lower()
        if tier in self.tiers and tier not in self._specs:
            return self._tier_model(tier, self.tiers[tier], model_id, kwargs)
        return self._provider_model(provider, model_id, kwargs)

    def _provider_model(self, provider: str, model_id: str | None, kwargs: dict[str, Any]) -> Any:
        """A rotating model of one provider (`get_model` for a provider, or a tier's entry)."""
        from hfs_core.pool import CallOptions

        name, model_id = self.resolve_model(provider, model_id)
        pool = self.pool(name)
        options = CallOptions.from_kwargs(kwargs, where=f"get_model({provider!r})")
        settings = self.config.provider(name)
        self._warn_unknown_model(name, model_id)
        base_url = kwargs.pop("base_url", None) or settings.base_url
        timeouts = Timeouts(*(_seconds(provider, name, kwargs.pop(name, None) or getattr(settings, name) or default)
                              for name, default in (("connect_timeout", Timeouts.connect),
                                                    ("read_timeout", Timeouts.read))))
        model_kwargs = _merge(_sdk_kwargs(pool.spec, base_url, timeouts), kwargs)
        from hfs_core.call import build_model

        try:
            return build_model(pool, self._clients[name], model_id, options, model_kwargs)
        except TypeError as exc:
            raise TypeError(f"get_model({provider!r}): {exc}") from None

    def get_any_model(self, **kwargs: Any) -> Any:
        """A tier over every loaded provider's default model, in the order of their names: each call runs
        on the first provider with a key free (the tier ``"any"``; keywords as for `get_model`)."""
        return self._tier_model(ANY_TIER, self._every_default_model(), None, kwargs)

    def _tier_model(self, tier: str, refs: Sequence[str], model_id: str | None, kwargs: dict[str, Any]) -> Any:
        """A tier model over the entries of `refs` that can serve calls; the others are left out (and said so)."""
        from hfs_core.pool import CallOptions

        if model_id is not None:
            raise TypeError(f"get_model({tier!r}): a tier names no model of its own, its entries name theirs "
                            f"({self.tiers_source} [tiers.{tier}])")
        options = CallOptions.from_kwargs(kwargs, where=f"get_model({tier!r})")
        entries, left_out = [], []
        for ref in refs:
            try:
                entries.append(self._provider_model(ref, None, dict(kwargs)))
            except HFSError as exc:  # one broken entry never takes the tier down
                left_out.append(self.mask(f"{ref}: {exc}"))
        for reason in left_out:
            if (tier, reason) not in self._left_out:
                self._left_out.add((tier, reason))
                log.info("tier %s: left out %s", tier, reason)
        if not entries:
            raise ProviderUnavailableError(f"tier {tier!r} ({self.tiers_source}) has no entry that can serve "
                                           f"calls: {'; '.join(left_out) or 'it lists none'}")
        from hfs_core.tier import build_tier

        return build_tier(tier, entries, options)

    def _warn_unknown_model(self, provider: str, model_id: str) -> None:
        spec = self._specs[provider]
        if (provider, model_id) in self._warned_models or model_id in self.config.provider(provider).models:
            return
        self._warned_models.add((provider, model_id))
        if catalog.is_known_model(spec.keycycle_name, model_id) is False:
            log.warning("%s: model %s is not in keycycle's table; its limits fall back to the provider's "
                        "default row", provider, self.mask(repr(model_id)))

    def shutdown(self) -> None:
        """Close every pool (SDK clients, keycycle threads) and flush usage. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pools = list(self._pools.values())
            clients = list(self._clients.values())
        for cache in clients:
            cache.close()
        for pool in pools:
            pool.close()
        if self._link is not None:
            self._link.close()
        if self._usage is not None:
            self._usage.close()


ProviderManager = Registry
"""The name HFS code already uses for the registry."""

_registry: Registry | None = None
_registry_lock = threading.RLock()
_creating = False
_atexit_registered = False


def get_registry() -> Registry:
    """The process-wide registry, created once even when many threads ask at the same moment."""
    global _registry, _atexit_registered, _creating
    registry = _registry
    if registry is None:
        if in_plugin_code():  # a plugin's import or hook, run for the registry being created
            raise HFSError("get_registry() was called while the registry is being created (by a "
                           "plugin at import time?); call it after the import instead")
        with _registry_lock:
            if _registry is None:
                if _creating:  # the same thread, from inside Registry()
                    raise HFSError("get_registry() was called while the registry is being created (by a "
                                   "plugin at import time?); call it after the import instead")
                _creating = True
                try:
                    _registry = Registry()
                finally:
                    _creating = False
                if not _atexit_registered:
                    atexit.register(shutdown)
                    _atexit_registered = True
            registry = _registry
    return registry


def get_provider_manager() -> Registry:
    """The older name of `get_registry`."""
    return get_registry()


def get_model(provider: str, model_id: str | None = None, **kwargs: Any) -> Any:
    """A rotating Agno model from the process-wide registry; see `Registry.get_model`."""
    return get_registry().get_model(provider, model_id, **kwargs)


def get_any_model(**kwargs: Any) -> Any:
    """A model over every usable provider of the process-wide registry; see `Registry.get_any_model`."""
    return get_registry().get_any_model(**kwargs)


def list_available_providers() -> list[str]:
    """Providers of the process-wide registry that can serve a call now."""
    return get_registry().available_providers


def is_provider_healthy(name: str) -> bool:
    """Whether provider `name` of the process-wide registry can serve a call now."""
    return get_registry().is_provider_healthy(name)


def shutdown() -> None:
    """Shut the process-wide registry down (registered with atexit; safe to call twice)."""
    if _registry is not None:
        _registry.shutdown()
