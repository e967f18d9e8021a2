"""What a registry opens and must close: the usage store, the link to the shared state (Redis) and the
key pools, each made on first use; `Resources.shutdown` closes them all."""

from __future__ import annotations

import datetime
import importlib
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hfs_core import catalog
from hfs_core.discovery import describe
from hfs_core.errors import HFSError, ProviderUnavailableError
from hfs_core.install import CORE, install_command, plugin_command
from hfs_core.plugin import ProviderSpec
from hfs_core.settings import USAGE_FIXES, Settings, data_dir
from hfs_core.variables import STATE_SECRET_ENV

if TYPE_CHECKING:
    from hfs_core.call import ClientCache
    from hfs_core.events import EventBus
    from hfs_core.pool import KeyPool, PoolStatus
    from hfs_core.pool.redis_link import RedisLink
    from hfs_core.pool.shared import StateProbe
    from hfs_core.telemetry import Telemetry
    from hfs_core.usage import UsageHealth, UsageStore

log = logging.getLogger("hfs_core")

HISTORY_SECONDS = 86400
"""How far back a new pool replays usage rows into its rate windows."""


def iso_time(seconds: float | None) -> str | None:
    """Epoch `seconds` as ISO-8601 UTC, to the second (None stays None)."""
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Resources:
    """The usage store, the shared-state link and the key pools of one registry.

    Args:
        settings: the registry's settings.
        keys: each provider's usable keys (from the start-up checks).
        telemetry: where the pools' calls report spans and metrics (the global providers by default).
    """

    def __init__(self, settings: Settings, keys: Mapping[str, Sequence[str]],
                 telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        self.keys = {name: list(found) for name, found in keys.items()}
        self.lock = threading.RLock()
        self.pool_errors: dict[str, str] = {}
        """Why a provider's pool could not be built, by provider name."""
        self._pools: dict[str, KeyPool] = {}
        self._clients: dict[str, ClientCache] = {}  # each pool's SDK clients, shared by its models
        self._usage: UsageStore | None = None
        self._usage_ready = False
        self._link: RedisLink | None = None
        self._link_ready = False
        self._closed = False
        self._events: EventBus | None = None
        self._telemetry = telemetry
        if telemetry is not None:
            telemetry.watch(self._statuses)

    @property
    def events(self) -> EventBus:
        """The subscribers to the pools' and tiers' events (made when a pool or a subscriber first needs
        them: a registry that only lists providers never loads `hfs_core.events`)."""
        if self._events is None:
            with self.lock:
                if self._events is None:
                    from hfs_core.events import EventBus

                    self._events = EventBus()
        return self._events

    @property
    def telemetry(self) -> Telemetry:
        """Where the pools' calls report: the registry's, else the global providers (made with the first pool)."""
        if self._telemetry is None:
            with self.lock:
                if self._telemetry is None:
                    from hfs_core.telemetry import Telemetry

                    made = Telemetry()
                    made.watch(self._statuses)
                    self._telemetry = made
        return self._telemetry

    def _statuses(self) -> list[tuple[str, PoolStatus]]:
        """Each built pool's provider and status (the key gauge's reading)."""
        return [(name, pool.status()) for name, pool in list(self._pools.items())]

    def built(self, name: str) -> KeyPool | None:
        """The pool of provider `name` if it has been built."""
        return self._pools.get(name)

    def clients(self, name: str) -> ClientCache:
        """The SDK clients of provider `name`'s keys (its pool is built first), shared by its models."""
        return self._clients[name]

    def pool(self, spec: ProviderSpec) -> KeyPool:
        """The key pool of the provider of `spec`, built on first use (this imports agno, keycycle and the SDK)."""
        pool = self._pools.get(spec.name)
        if pool is not None and not self._closed:  # built: no wait behind another provider's build
            return pool
        with self.lock:
            if self._closed:
                raise HFSError("the registry has been shut down")
            pool = self._pools.get(spec.name)
            if pool is None:
                pool = self._build_pool(spec)
            return pool

    def _build_pool(self, spec: ProviderSpec) -> KeyPool:
        default_model = self.settings.default_model(spec)
        try:
            from hfs_core.call import ClientCache
            from hfs_core.pool import KeyPool, LocalPoolState, PoolState
            from hfs_core.pool.shared import RedisPoolState

            module_name, _, class_name = spec.model_class.partition(":")
            model_class = getattr(importlib.import_module(module_name), class_name)
            keys = self.keys[spec.name]
            configured = self.settings.config.provider(spec.name)
            budgets = catalog.budgets(configured.key_group_numbers, catalog.key_numbers(spec, self.settings.env, keys))
            local = LocalPoolState.build(spec, keys, default_model, configured.models, budgets)
            link = self.state_link()
            state: PoolState = local if link is None else RedisPoolState(local, link, spec.name, keys)
            usage = self.usage_store()
            pool = KeyPool(spec, keys, state, usage, budgets=budgets, events=self.events, telemetry=self.telemetry)
            clients = ClientCache(keys, model_class)
        except Exception as exc:
            hint = f"; reinstall it: {plugin_command(spec.name)}" if isinstance(exc, ImportError) else ""
            self.pool_errors[spec.name] = describe(exc) + hint
            log.error("%s: cannot build the key pool: %s", spec.name, self.pool_errors[spec.name])
            raise ProviderUnavailableError(f"provider {spec.name!r} cannot start: {self.pool_errors[spec.name]}") \
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

    def pool_status(self, spec: ProviderSpec) -> dict[str, Any]:
        """The keys of `spec`'s provider as `Registry.status` shows them (``keys``, ``next_free``), its
        pool built first; keys only by their last 4 characters."""
        pool = self.pool(spec)
        configured = self.settings.config.provider(spec.name)
        keys = self.keys[spec.name]
        numbers = catalog.key_numbers(spec, self.settings.env, keys)
        budgets = catalog.budgets(configured.key_group_numbers, numbers)
        shown: list[dict[str, Any]] = []
        waits: list[float] = []
        for index, key in enumerate(pool.state.snapshot([self.settings.default_model(spec), *configured.models])):
            if key.state in ("cooling", "quota") and key.until is not None:
                waits.append(key.until)
            grouped = budgets.count(budgets[index]) > 1
            shown.append({
                "key": f"…{keys[index][-4:]}", "group": numbers[budgets[index]] if grouped else None,
                "state": key.state, "until": iso_time(key.until), "reason": key.reason, "in_flight": key.in_flight,
                "models": {model: {"used": dict(windows.used), "limits": dict(windows.limits),
                                   "learned": None if windows.learned is None else {"rpm": windows.learned}}
                           for model, windows in key.models.items()}})
        blocked = waits and all(key["state"] != "ready" for key in shown)
        return {"keys": shown, "next_free": iso_time(min(waits)) if blocked else None}

    def usage_store(self) -> UsageStore | None:
        """The usage store, connected on first use (None when tracking is off)."""
        with self.lock:
            if not self._usage_ready:
                self._usage_ready = True
                url = self.settings.usage_url()
                if url is not None:
                    from hfs_core.usage import Spool, UsageStore, catch_sigterm, folder_problem
                    from hfs_core.usage.spool import SPOOL_FILE

                    # An unusable data folder costs the spool (rows wait in memory) and, for the
                    # default SQLite file, the database: said once, never a reason to fail a call.
                    folder = data_dir()
                    problem = folder_problem(folder)
                    spool = None if problem else Spool(folder / SPOOL_FILE, url)
                    hint = f"the data folder cannot be used ({problem}): {USAGE_FIXES}" if problem else None
                    self._usage = UsageStore(url, spool=spool, hint=hint)
                    catch_sigterm()
            return self._usage

    def usage_health(self) -> UsageHealth | None:
        """Rows written, waiting and lost so far (None before any pool was built or with tracking off)."""
        return self._usage.health() if self._usage is not None else None

    @property
    def state_up(self) -> bool | None:
        """Whether Redis answered last (None: no link made yet, or no shared state)."""
        return self._link.up if self._link is not None else None

    def probe_state(self) -> StateProbe | None:
        """Ping the shared state once (None: there is none)."""
        url = self.settings.state_url()
        if url is None:
            return None
        from hfs_core.pool.shared import probe

        return probe(url, namespace=self.settings.config.state.namespace)

    def state_link(self) -> RedisLink | None:
        """The link to the shared state, made with the first pool (None: state stays in this process)."""
        if not self._link_ready:
            self._link_ready = True
            url = self.settings.state_url()
            if url is not None:
                shown = self.settings.state_info()["url"]
                state = self.settings.config.state
                try:
                    from hfs_core.pool.redis_link import RedisLink

                    self._link = RedisLink(url, shown_url=shown, namespace=state.namespace,
                                           secret=self.settings.var(STATE_SECRET_ENV) or None,
                                           lease_seconds=state.lease_seconds, timeout=state.timeout)
                except Exception as exc:  # never a reason for a pool not to serve
                    hint = f": {install_command(CORE, 'redis')}" if isinstance(exc, ImportError) else ""
                    log.error("shared state %s cannot be used (%s%s); each process keeps its pools' state to "
                              "itself", shown, describe(exc), hint)
        return self._link

    def shutdown(self) -> None:
        """Close every pool (SDK clients, keycycle threads), the shared-state link, and flush usage.
        Safe to call twice."""
        with self.lock:
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
        if self._events is not None:
            self._events.close()
