"""The registry: the providers its plugins bring, looked up by name, and `get_model`, which hands out a
rotating Agno model for a provider (or one model over a tier's entries).

Its parts live beside it: `settings` (the environment and configuration), `checks` (the start-up
checks and log), `resources` (the usage store, the shared-state link and the pools), `tier_table`
(the tiers' entries), `process` (the process-wide registry and the older API's names).
Discovery and the checks import neither agno, keycycle nor any provider SDK; a provider's pool (and
with it those packages) is built the first time it is needed. One plugin that fails to import, raises
in a hook or returns the wrong thing is recorded as a failed plugin and never stops the others.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfs_core import catalog, checks, tier_table
from hfs_core.checks import unknown_model
from hfs_core.config import Config
from hfs_core.discovery import HOOK_TIMEOUT, PluginInfo, Plugins
from hfs_core.env import EnvReport, SecretMask
from hfs_core.errors import HFSError, ProviderNotFoundError, ProviderUnavailableError
from hfs_core.install import plugin_command
from hfs_core.plugin import Problem, ProviderSpec, Timeouts, shown_name
from hfs_core.resources import Resources
from hfs_core.settings import Settings
from hfs_core.tier_table import ANY_TIER, TierEntry
from hfs_core.variables import PLUGINS_ENV

if TYPE_CHECKING:
    from hfs_core.call import ModelRecipe
    from hfs_core.events import Subscriber, Subscription
    from hfs_core.pool import KeyPool
    from hfs_core.pool.shared import StateProbe
    from hfs_core.telemetry import Telemetry
    from hfs_core.usage import UsageHealth, UsageStore

log = logging.getLogger("hfs_core")

_MAX_RECIPES = 256
"""Shapes of `get_model` call whose recipe a registry keeps (more are worked out each time)."""

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


@functools.lru_cache(maxsize=64)
def _takes_timeouts(sdk_options: Callable[..., Any]) -> bool:
    """Whether a plugin's `sdk_options` takes `Timeouts` (an older one takes only the URL); asked once
    per function, as `inspect.signature` costs more than the rest of `get_model`."""
    import inspect

    try:
        return len(inspect.signature(sdk_options).parameters) >= 2
    except (TypeError, ValueError):
        return False


def _sdk_kwargs(spec: ProviderSpec, base_url: str | None, timeouts: Timeouts) -> dict[str, Any]:
    """The plugin's `sdk_options` for `base_url` and `timeouts` (an older one takes only the URL)."""
    try:
        takes = _takes_timeouts(spec.sdk_options)
    except TypeError:  # a callable that cannot be hashed is asked each time
        takes = _takes_timeouts.__wrapped__(spec.sdk_options)
    return spec.sdk_options(base_url, timeouts) if takes else spec.sdk_options(base_url)


class Registry:
    """Provider plugins, their environment, and their key pools.

    Args:
        env: variables to read instead of ``.env`` plus the process environment.
        config: configuration to use instead of the one found on disk.
        plugins: names of the only plugins to load (else ``$HFS_PLUGINS``, else config).
        hook_timeout: seconds a plugin's import or hook may take before it counts as failed.
        telemetry: where calls report OpenTelemetry spans and metrics (default: the global tracer
            and meter providers, once the application sets them; see docs/observability.md).
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        config: Config | None = None,
        plugins: Sequence[str] | None = None,
        hook_timeout: float = HOOK_TIMEOUT,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.problems: list[Problem] = []
        self.settings = Settings.load(env=env, config=config, problems=self.problems)
        self.mask = SecretMask(self.env)
        """Hides keys in text: every ``*_API_KEY*`` value, and (once plugins load) words shaped like keys."""
        picks = {name: p.plugin for name, p in self.config.providers.items() if p.plugin}
        self._discovery = Plugins(only=self.settings.plugin_filter(plugins), picks=picks,
                                  source_name=self.config.source_name, hook_timeout=hook_timeout, mask=self.mask)
        self._plugins = self._discovery.infos
        self._specs = self._discovery.specs
        self.problems += checks.missing_plugins(self.settings, self._discovery.missing)
        self.mask = SecretMask(self.env, [s.key_prefix for s in self._specs.values() if s.key_prefix])
        keys, self._reports = checks.provider_reports(self.settings, self._discovery, self.mask)
        self.resources = Resources(self.settings, keys, telemetry)
        """The usage store, the shared-state link and the pools, made on first use."""
        self._warned_models: set[tuple[str, str]] = set()
        self._recipes: dict[tuple[Any, ...], tuple[str, ModelRecipe]] = {}
        self._left_out: set[tuple[str, str]] = set()  # (tier, entry and why) already logged
        self.problems += checks.configuration_problems(self.settings, self._discovery, self.tier_entries, self.mask)
        checks.log_start(self.settings, self.problems, self._reports)
        if self.config.track_usage:  # a registry is usually made on the main thread, where this must run
            from hfs_core.usage.exits import catch_sigterm

            catch_sigterm()

    def __repr__(self) -> str:
        return (f"Registry(providers={sorted(self._specs)}, available={self.available_providers}, "
                f"failed_plugins={[p.name for p in self._plugins if p.state == 'failed']})")

    @property
    def env(self) -> Mapping[str, str]:
        """The variables read (``.env`` under the process environment, or the ones given)."""
        return self.settings.env

    @property
    def config(self) -> Config:
        """The configuration in effect."""
        return self.settings.config

    @property
    def env_file(self) -> Path | None:
        """The ``.env`` file read (the first in the working directory or its parents, up to the
        repository's root: the first folder holding ``.git``)."""
        return self.settings.env_file

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
        if report is None or not report.healthy or name in self.resources.pool_errors:
            return False
        pool = self.resources.built(name)
        return pool is None or pool.status().live > 0

    @property
    def tiers(self) -> dict[str, tuple[str, ...]]:
        """Each tier's entries (``provider:model``), in order of preference: the configuration's, or with
        none there, `DEFAULT_TIERS` as `tier_table.default_tier` builds them from the plugins' statements."""
        return tier_table.tiers(self.settings, self._specs)

    @property
    def tiers_source(self) -> str:
        """Where the tiers come from: the configuration file, or ``"default"``."""
        return tier_table.tiers_source(self.settings)

    def tier_entries(self, tier: str) -> list[TierEntry]:
        """The entries of `tier` and whether each can serve calls now (``KeyError`` for an unknown tier)."""
        return tier_table.tier_entries(self.tiers[tier], self.settings, self._specs, self._require, self.mask)

    def import_problem(self, name: str) -> str | None:
        """Why provider `name` could not be built (its Agno class's package, or a dependency its
        plugin declares, is not installed), found without importing them; None when nothing is missing."""
        return checks.import_problem(self._specs[name], self._plugins)

    # -- lookup ---------------------------------------------------------------------------------

    def _available(self) -> str:
        """The providers that can serve calls, for an error message (this asks every built pool's
        status, so only a failing lookup does: `get_model` takes no pool's lock)."""
        return ", ".join(self.available_providers) or "none"

    def _require(self, name: str) -> ProviderSpec:
        spec = self._specs.get(name)
        if spec is None and name in self.tiers:
            raise ProviderNotFoundError(f"{name!r} is a tier, not a provider (get_model({name!r}) gives the tier); "
                                        "a tier lists provider models only")
        if spec is None:
            failed = next((p for p in self._plugins if p.name == name and p.state == "failed"), None)
            if failed is not None:
                raise ProviderUnavailableError(
                    f"provider {name!r}: plugin {failed.distribution} failed to load ({failed.error}); "
                    f"available: {self._available()}")
            skipped = any(p.name == name and p.state == "skipped" for p in self._plugins)
            import difflib

            near = difflib.get_close_matches(name, [*self._specs, *self.tiers], n=1)
            hint = (f"it is installed but not loaded: add it to {PLUGINS_ENV} or plugins in the config" if skipped
                    else f"did you mean {near[0]!r}?" if near
                    else f"install its plugin: {plugin_command(shown_name(name))}")
            tiers = f"; tiers: {', '.join(self.tiers)}" if self.tiers else ""
            raise ProviderNotFoundError(f"unknown provider {shown_name(name)!r}; available: {self._available()}"
                                        f"{tiers}; {hint}")
        report = self._reports[name]
        if not report.enabled:
            raise ProviderUnavailableError(
                f"provider {name!r} is disabled in {self.config.source_name} ([providers.{name}] enabled = false)")
        if not report.configured:
            problem = report.errors[0] if report.errors else None
            detail = f"{problem.variable} {problem.message} ({problem.hint})" if problem else "no usable keys"
            raise ProviderUnavailableError(f"provider {name!r} is not configured: {detail}; "
                                           f"available: {self._available()}")
        if name in self.resources.pool_errors:
            raise ProviderUnavailableError(f"provider {name!r} cannot start: {self.resources.pool_errors[name]}")
        return spec

    # -- usage, shared state, pools ------------------------------------------------------------

    def db_url_var(self) -> str | None:
        """The variable that names the usage database (``HFS_USAGE_DB_URL``, else ``TIDB_DB_URL``), if one is set."""
        return self.settings.db_url_var()

    def usage_url(self) -> str | None:
        """The usage database URL in effect (None when usage tracking is off)."""
        return self.settings.usage_url()

    def usage_store(self) -> UsageStore | None:
        """The usage store, connected on first use (None when tracking is off)."""
        return self.resources.usage_store()

    def usage_health(self) -> UsageHealth | None:
        """Rows written, waiting and lost so far (None before any pool was built or with tracking off)."""
        return self.resources.usage_health()

    def state_url(self) -> str | None:
        """The shared state's URL (``HFS_STATE_URL``, else ``[state] url``); None: each process keeps its own."""
        return self.settings.state_url()

    def state_info(self) -> dict[str, Any]:
        """Where the pools keep their state, safe to show: ``kind`` ("redis" or "in-process"), ``url``
        (password hidden), ``source`` (the variable or file that names it), ``namespace``, ``up``
        (whether Redis answered last, once a pool has used it)."""
        return self.settings.state_info(self.resources.state_up)

    def probe_state(self) -> StateProbe | None:
        """Ping the shared state once (None: there is none)."""
        return self.resources.probe_state()

    def pool(self, name: str) -> KeyPool:
        """The key pool of provider `name`, built on first use (this imports agno, keycycle and the SDK)."""
        return self.resources.pool(self._require(name))

    def status(self, providers: Sequence[str] | None = None) -> dict[str, Any]:
        """Every key of every configured provider (or of `providers`) and each tier's entries, now,
        JSON-ready (the schema: docs/cli.md, "hfs status"); each provider's pool is built first. Over
        Redis it is the fleet's view, else this process's. Keys show only their last 4 characters."""
        shown: dict[str, dict[str, Any]] = {}
        for name in sorted(self._specs) if providers is None else [self._require(p).name for p in providers]:
            report = self._reports[name]
            if providers is None and not (report.enabled and report.configured):
                continue
            try:
                entry = self.resources.pool_status(self._specs[name])
            except HFSError as exc:  # one provider that cannot start never hides the others
                entry = {"keys": [], "next_free": None, "problem": self.mask(str(exc))}
            for key in entry["keys"]:
                key["reason"] = key["reason"] and self.mask(key["reason"])
            shown[name] = {"healthy": self.is_provider_healthy(name), **entry}
        state = self.state_info()
        state["kind"] = "local" if state["kind"] == "in-process" else state["kind"]
        tiers = {tier: [{"entry": e.name, "usable": e.problem is None, "why": e.problem}
                        for e in self.tier_entries(tier)] for tier in self.tiers}
        return {"state": state, "providers": shown, "tiers": tiers}

    # -- models ----------------------------------------------------------------------------------

    def resolve_model(self, provider: str, model_id: str | None = None) -> tuple[str, str]:
        """The provider name and model id a call to `provider` (or ``"provider:model"``) uses.

        The model is `model_id`, else the one after the colon, else the config's
        ``default_model``, else the plugin's. Raises `ProviderNotFoundError` or
        `ProviderUnavailableError` when the provider cannot serve calls.
        """
        name, _, inline = provider.partition(":")
        name = name.strip().lower()
        spec = self._require(name)
        return name, model_id or inline.strip() or self.settings.default_model(spec)

    def get_model(self, provider: str, model_id: str | None = None, **kwargs: Any) -> Any:
        """A rotating Agno model for `provider` (or ``"provider:model"``), or for a tier's name one
        Agno model over the tier's entries (`tiers`): each call runs on the first that can serve it.

        Keyword arguments `estimated_tokens` (1000), `wait` (True), `timeout` (10.0 s of
        waiting in all, shared by a tier's entries; ``inf`` waits without limit) and
        `max_retries` (5, per entry) shape how calls wait and retry; `connect_timeout` (5.0 s)
        and `read_timeout` (30.0 s between two pieces of the answer) bound each attempt on the
        wire (also settable per provider in the configuration); every other keyword goes to the
        provider's Agno model class (``base_url``, ``temperature``...; for a tier, to every entry's;
        ``max_tokens`` is renamed to the class's own cap field where it names it otherwise).
        """
        model_id = model_id or kwargs.pop("id", None)
        tier = provider.strip().lower()
        if tier not in self._specs and tier in self.tiers:
            return self._tier_model(tier, self.tiers[tier], model_id, kwargs)
        return self._provider_model(provider, model_id, kwargs)

    def _provider_model(self, provider: str, model_id: str | None, kwargs: dict[str, Any]) -> Any:
        """A rotating model of one provider (`get_model` for a provider, or a tier's entry).

        What a call of one shape (provider, model and keywords) works out, from the configuration and
        the plugin, is kept (`ModelRecipe`): HFS asks for the same model for every Agent it builds. A
        keyword whose value cannot be hashed (a dict of ``client_params``) is worked out each time.
        """
        shape = (provider, model_id, tuple((name, type(value), value) for name, value in kwargs.items()))
        try:
            known = self._recipes.get(shape)
            kept = True
        except TypeError:  # a value that cannot be hashed
            known, kept = None, False
        if known is None:
            known = self._recipe(provider, model_id, kwargs)
            if kept and len(self._recipes) < _MAX_RECIPES:
                self._recipes[shape] = known
        name, recipe = known
        return recipe.build(self.pool(name), self.resources.clients(name))

    def _recipe(self, provider: str, model_id: str | None, kwargs: dict[str, Any]) -> tuple[str, ModelRecipe]:
        """Provider `provider`'s name and the recipe of its models of `model_id` with `kwargs` (consumed)."""
        from hfs_core.call import model_recipe
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
        try:
            return name, model_recipe(pool, self.resources.clients(name), model_id, options, model_kwargs)
        except TypeError as exc:
            raise TypeError(f"get_model({provider!r}): {exc}") from None

    def get_any_model(self, **kwargs: Any) -> Any:
        """A tier over every loaded provider's default model, in the order of their names: each call runs
        on the first provider with a key free (the tier ``"any"``; keywords as for `get_model`)."""
        return self._tier_model(ANY_TIER, tier_table.every_default_model(self.settings, self._specs), None,
                                kwargs)

    def _tier_model(self, tier: str, names: Sequence[str], model_id: str | None, kwargs: dict[str, Any]) -> Any:
        """A tier model over those of its entries `names` (``provider:model`` each) that can serve calls;
        the others are left out (and said so)."""
        from hfs_core.pool import CallOptions

        if model_id is not None:
            raise TypeError(f"get_model({tier!r}): a tier names no model of its own, its entries name theirs "
                            f"({self.tiers_source} [tiers.{tier}])")
        options = CallOptions.from_kwargs(kwargs, where=f"get_model({tier!r})")
        entries, left_out = [], []
        for name in names:
            try:
                entries.append(self._provider_model(name, None, dict(kwargs)))
            except HFSError as exc:  # one broken entry never takes the tier down
                left_out.append(self.mask(f"{name}: {exc}"))
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
        if not catalog.is_known_model(spec, model_id):
            log.warning("%s: model %s %s", provider, self.mask(repr(model_id)), unknown_model(provider))

    # -- events ----------------------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Subscription:
        """Have `callback` called with each event of this registry's pools and tiers (`hfs_core.events`:
        a key cooled, retired or out for the day, a limit learned, a tier's call moved on, a call
        refused), on a thread of its own: it never holds up a call, and its errors are logged. The
        subscription counts the events it dropped (its queue full) and the subscriber's failures."""
        return self.resources.events.subscribe(callback)

    def unsubscribe(self, callback: Subscriber) -> None:
        """Stop calling `callback` (what was queued for it is delivered first)."""
        self.resources.events.unsubscribe(callback)

    def shutdown(self) -> None:
        """Close every pool (SDK clients, keycycle threads) and flush usage. Safe to call twice."""
        self.resources.shutdown()
