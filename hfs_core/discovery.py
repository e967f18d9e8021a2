"""Discovery: the installed provider plugins, found by entry point and loaded one by one.

Each plugin is imported and asked for its spec on its own, with a time limit; whatever one
plugin does (fail to import, raise, exit, hang, return the wrong thing, claim a provider
another plugin claims) is recorded as that plugin's failure and never stops the others.

The entry points of the group come from a small cache in the user cache folder, kept while the
installed set is unchanged (`installed_fingerprint`); importlib.metadata is asked only when it changed.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import logging
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, Literal

import pluggy

from hfs_core import plugin
from hfs_core.deadline import DeadlineExceeded, call_with_deadline
from hfs_core.plugin import ProviderSpec, shown_name

log = logging.getLogger("hfs_core")

ENTRY_POINT_GROUP = "hfs.providers"
HOOK_TIMEOUT = 2.0
"""Seconds a plugin's import or hook may take before it counts as failed (it may be hung). The hooks
read the environment and build a spec, work of milliseconds; a hung one costs every listing this much."""

_plugin_thread = threading.local()
"""``active`` is set in the threads that run plugin code."""

Claim = tuple["PluginInfo", ModuleType, ProviderSpec]

_CACHE_HEADER = "hfs entry-point cache 1"
_RACY_NS = 2_000_000_000
"""A fingerprint holding a time this close to now (or later) is not cached: a change within the same
tick of the file system's clock would leave the time as it was (as git treats a "racily clean" file)."""


def in_plugin_code() -> bool:
    """Whether the calling thread is running a plugin's import or hook for the registry."""
    return bool(getattr(_plugin_thread, "active", False))


@dataclass(frozen=True)
class PluginInfo:
    """One discovered plugin: where it comes from and whether it loaded."""

    name: str
    distribution: str | None
    version: str | None
    state: Literal["loaded", "failed", "skipped"]
    provider: str | None = None
    hooks: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {**self.__dict__, "hooks": list(self.hooks)}


class InstalledEntryPoint:
    """One entry point of the ``hfs.providers`` group and the distribution that declares it (a plain class:
    a dataclass or named tuple costs a listing more to define than all its uses)."""

    __slots__ = ("distribution", "name", "value", "version")

    def __init__(self, name: str, value: str, distribution: str | None, version: str | None) -> None:
        self.name = name
        self.value = value
        self.distribution = distribution
        self.version = version

    def load(self) -> Any:
        """Import the object the entry point names, as `importlib.metadata.EntryPoint.load` does."""
        module, _, attrs = self.value.partition("[")[0].partition(":")
        found: Any = importlib.import_module(module.strip())
        for attr in filter(None, attrs.strip().split(".")):
            found = getattr(found, attr)
        return found


def installed_fingerprint() -> tuple[str, int] | None:
    """What the installed distributions' entry points depend on, found without importlib.metadata, as text,
    and the newest time in it (None when in doubt: a ``sys.path`` entry that is a file, such as a zip, or a
    finder of distributions other than the standard path finder).

    The interpreter and its prefix, then a line per ``sys.path`` entry (its path, or that it is missing) and
    a line per ``*.dist-info``/``*.egg-info`` in it, by name (a distribution installed, upgraded or removed
    changes them) with the modification time of its ``entry_points.txt`` (an edited one changes its own).
    """
    if any(finder is not importlib.machinery.PathFinder and hasattr(finder, "find_distributions")
           for finder in sys.meta_path):
        return None
    lines = [f"{sys.implementation.cache_tag} {sys.hexversion} {sys.prefix}"]
    newest = 0
    for entry in sys.path:
        path = os.path.abspath(entry or ".")
        try:
            found = os.stat(path)
        except OSError:
            lines.append(f"{path}\t-")
            continue
        if not stat.S_ISDIR(found.st_mode):
            return None
        try:
            with os.scandir(path) as listing:
                names = sorted(e.name for e in listing if e.name.endswith((".dist-info", ".egg-info")))
        except OSError:
            return None
        lines.append(path)
        for name in names:
            try:
                stamp = os.stat(os.path.join(path, name, "entry_points.txt")).st_mtime_ns
            except OSError:
                lines.append(f"\t{name}\t-")
                continue
            lines.append(f"\t{name}\t{stamp}")
            newest = max(newest, stamp)
    return "\n".join(lines) + "\n", newest


def cache_file() -> str:
    """The entry-point cache: ``entry-points`` in the user cache folder, ``$XDG_CACHE_HOME/hfs-providers``
    (an absolute one, else ``~/.cache/hfs-providers``) as platformdirs names it on Linux and the BSDs, found
    here without importing platformdirs (4 ms, a tenth of the listing); platformdirs' answer on macOS and Windows."""
    if sys.platform in ("darwin", "win32"):
        import platformdirs

        folder = platformdirs.user_cache_dir("hfs-providers", appauthor=False)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        folder = os.path.join(xdg if os.path.isabs(xdg) else os.path.expanduser("~/.cache"), "hfs-providers")
    return os.path.join(folder, "entry-points")


def _read_cache(path: str, fingerprint: str) -> list[InstalledEntryPoint] | None:
    """The cached entry points when the cache was written for `fingerprint` (None: no such cache).

    The file is `_CACHE_HEADER`, the fingerprint, a line ``=``, then a line per entry point: its name,
    value, distribution and version, separated by tabs (a missing distribution or version empty)."""
    head = f"{_CACHE_HEADER}\n{fingerprint}=\n"
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, ValueError):  # none, unreadable, not UTF-8
        return None
    if not text.startswith(head) or not text.endswith("\n"):
        return None
    rows = [line.split("\t") for line in text[len(head):].splitlines()]
    if not all(len(row) == 4 and row[0] and row[1] for row in rows):
        return None
    return [InstalledEntryPoint(name, value, dist or None, version or None) for name, value, dist, version in rows]


def _write_cache(path: str, fingerprint: tuple[str, int], entries: list[InstalledEntryPoint]) -> None:
    """Replace the cache at once (a file beside it, then renamed); a failure is logged at debug level."""
    text, newest = fingerprint
    if newest > time.time_ns() - _RACY_NS:
        log.debug("entry-point cache not written: the installed set changed in the last seconds")
        return
    rows = [(e.name, e.value, e.distribution or "", e.version or "") for e in entries]
    if any("\t" in field or "\n" in field for row in rows for field in row):
        log.debug("entry-point cache not written: an entry point has a tab or a line break")
        return
    partial = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(partial, "w", encoding="utf-8") as file:
            file.write(f"{_CACHE_HEADER}\n{text}=\n" + "".join("\t".join(row) + "\n" for row in rows))
        os.replace(partial, path)
    except OSError as exc:
        log.debug("entry-point cache %s not written: %s", path, exc)
        with contextlib.suppress(OSError):
            os.unlink(partial)


def _scan() -> list[InstalledEntryPoint]:
    """The group's entry points as importlib.metadata finds them (it reads every distribution's metadata)."""
    import importlib.metadata

    found = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        found.append(InstalledEntryPoint(ep.name, ep.value, dist.metadata["Name"] if dist is not None else None,
                                         dist.version if dist is not None else None))
    return found


def installed_entry_points() -> list[InstalledEntryPoint]:
    """The ``hfs.providers`` entry points of the installed distributions, by name: from the cache while
    `installed_fingerprint` is unchanged, else from importlib.metadata (and the cache rewritten)."""
    fingerprint = installed_fingerprint()
    path = cache_file()
    cached = _read_cache(path, fingerprint[0]) if fingerprint is not None else None
    if cached is not None:
        return cached
    found = sorted(_scan(), key=lambda e: e.name)
    if fingerprint is not None:
        _write_cache(path, fingerprint, found)
    return found


class _PluginFault(Exception):
    """Plugin code raised (`raised`) or did not finish in time; `detail` says which and how."""

    def __init__(self, raised: bool, detail: str) -> None:
        super().__init__(f"raised {detail}" if raised else f"did not finish {detail}")
        self.raised = raised
        self.detail = detail


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class PluginFault(Exception):
    """A plugin's hook raised or did not finish in time (the message says which)."""


class Plugins:
    """The provider plugins of one registry: what loaded, what failed, and their hooks.

    Args:
        only: entry-point names of the only plugins to load (None: all installed).
        picks: the distribution the configuration picks for a provider name, if any.
        source_name: the configuration's file name, for messages.
        hook_timeout: seconds a plugin's import or hook may take.
        mask: hides keys in the text of a plugin's errors.
    """

    def __init__(self, *, only: Collection[str] | None, picks: Mapping[str, str], source_name: str,
                 hook_timeout: float = HOOK_TIMEOUT, mask: Callable[[str], str] = str) -> None:
        self.hook_timeout = hook_timeout
        self._picks = picks
        self._source_name = source_name
        self._mask = mask
        self._manager = pluggy.PluginManager("hfs")
        self._manager.add_hookspecs(plugin)
        self.infos: list[PluginInfo] = []
        """Every discovered plugin, loaded, failed or skipped, by entry-point name."""
        self.specs: dict[str, ProviderSpec] = {}
        """The loaded providers' specs by provider name."""
        self._modules: dict[str, ModuleType] = {}
        self.missing: list[str] = []
        """Names in `only` that no installed plugin has."""
        self._load(None if only is None else set(only))

    def call(self, provider: str, hook: str, **kwargs: Any) -> Any:
        """Run `provider`'s plugin implementation of `hook` within the time limit (None if it has none).

        Raises `PluginFault` for whatever the plugin raised or a hang; the message says which.
        """
        module = self._modules[provider]
        try:
            return self._plugin_code(lambda: self._call(module, hook, **kwargs), hook)
        except _PluginFault as fault:
            raise PluginFault(self._mask(f"{hook} {fault}")) from None

    def _load(self, only: set[str] | None) -> None:
        found = installed_entry_points()
        claims: dict[str, list[Claim]] = {}
        for ep in found:
            if only is not None and ep.name not in only:
                self.infos.append(PluginInfo(ep.name, ep.distribution, ep.version, "skipped"))
                continue
            loaded = self._load_one(ep)
            if isinstance(loaded, PluginInfo):
                self.infos.append(loaded)
                log.warning("plugin %s (%s) failed to load: %s", ep.name, ep.distribution or "?", loaded.error)
            else:
                claims.setdefault(loaded[2].name, []).append(loaded)
        for provider, claimants in claims.items():
            self._settle_claims(provider, claimants)
        self.infos.sort(key=lambda p: p.name)
        if only is not None:
            self.missing = sorted(only - {ep.name for ep in found})

    def _settle_claims(self, provider: str, claimants: list[Claim]) -> None:
        """Give `provider` to the one plugin that claims it, or to the one the configuration picks.

        When several installed plugins claim one provider name, none of them gets its keys
        (one may be a look-alike that would send them elsewhere) until ``[providers.NAME]
        plugin = "<distribution>"`` picks one.
        """
        picked = self._picks.get(provider)
        if len(claimants) == 1 and picked is None:
            winners = claimants
        else:
            winners = [c for c in claimants if c[0].distribution == picked]
        if len(winners) == 1:
            info, module, spec = winners[0]
            self.specs[provider] = spec
            self._modules[provider] = module
            self.infos.append(info)
        else:
            winners = []
        names = " and ".join(f"{c[0].distribution} {c[0].version}" for c in claimants)
        for info, module, _ in claimants:
            if winners and info is winners[0][0]:
                continue
            self._manager.unregister(module)
            if winners:
                error = (f"provider {provider!r} is also claimed by {names}; "
                         f"[providers.{provider}] plugin in {self._source_name} picks {picked}")
            elif picked is not None:
                error = (f"provider {provider!r} is claimed by {names}, and [providers.{provider}] plugin = "
                         f"{shown_name(picked)!r} in {self._source_name} names none of them")
            else:
                error = (f"provider {provider!r} is claimed by {names}; none of them gets "
                         f"{self._env_prefix(claimants)}_API_KEY_* until [providers.{provider}] plugin = "
                         f'"<distribution>" in hfs.toml picks one (or one is uninstalled)')
            self.infos.append(replace(info, state="failed", error=error))
            log.warning("plugin %s (%s) failed to load: %s", info.name, info.distribution or "?", error)

    @staticmethod
    def _env_prefix(claimants: list[Claim]) -> str:
        return "/".join(sorted({spec.env_prefix for _, _, spec in claimants}))

    def _load_one(self, ep: InstalledEntryPoint) -> PluginInfo | Claim:
        """Import one plugin and ask it for its spec: the plugin's claim, or a failed PluginInfo.

        Plugin code runs with a time limit, and whatever it raises (``SystemExit`` too, but
        not ``KeyboardInterrupt``) is the plugin's failure, never the registry's.
        """
        def failed(error: str, hooks: tuple[str, ...] = ()) -> PluginInfo:
            return PluginInfo(ep.name, ep.distribution, ep.version, "failed", hooks=hooks, error=self._mask(error))

        try:
            module = self._plugin_code(ep.load, f"importing plugin {ep.name}")
        except _PluginFault as fault:
            return failed(f"import failed: {fault.detail}" if fault.raised else f"import {fault}")
        try:
            self._manager.register(module, name=f"{ep.name}:{ep.distribution}")
        except Exception as exc:
            return failed(f"not a valid hfs plugin: {describe(exc)}")
        hooks = tuple(sorted(h.name for h in self._manager.get_hookcallers(module) or []))
        try:
            spec = self._plugin_code(lambda: self._call(module, "register_provider"), "register_provider")
        except _PluginFault as fault:
            self._manager.unregister(module)
            return failed(f"register_provider {fault}", hooks)
        if spec is None:
            self._manager.unregister(module)
            return failed("does not implement register_provider", hooks)
        if not isinstance(spec, ProviderSpec):
            self._manager.unregister(module)
            return failed(f"register_provider returned {type(spec).__name__}, not a ProviderSpec", hooks)
        return PluginInfo(ep.name, ep.distribution, ep.version, "loaded", provider=spec.name, hooks=hooks), module, spec

    def _plugin_code(self, work: Callable[[], Any], what: str) -> Any:
        """Run plugin code within `hook_timeout`; raise `_PluginFault` for anything it raises or a hang."""
        def in_plugin_thread() -> Any:
            _plugin_thread.active = True
            return work()

        try:
            return call_with_deadline(in_plugin_thread, self.hook_timeout, name=f"hfs-plugin {what}")
        except KeyboardInterrupt:
            raise
        except DeadlineExceeded:
            raise _PluginFault(False, f"within {self.hook_timeout:g}s") from None
        except BaseException as exc:  # a plugin's sys.exit() or bug is its own failure
            raise _PluginFault(True, describe(exc)) from None

    def _call(self, module: ModuleType, hook: str, **kwargs: Any) -> Any:
        """Call one plugin's implementation of `hook` through pluggy, the other plugins left out
        (None if it has none, or it returned None)."""
        others = [p for p in self._manager.get_plugins() if p is not module]
        results = self._manager.subset_hook_caller(hook, others)(**kwargs)
        return results[0] if results else None

