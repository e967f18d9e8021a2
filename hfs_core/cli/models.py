"""``hfs models``: a provider's models with the limits each is held to per key, and where each came from."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from hfs_core.cli.common import CliError, open_registry
from hfs_core.cli.output import Cell, LogFilter, out, plural, print_json, table
from hfs_core.cli.providers import key_groups_text
from hfs_core.install import FIRST_PLUGIN

if TYPE_CHECKING:
    from hfs_core.registry import Registry

_SHOWN = ("rpm", "rph", "rpd", "tpm", "tph", "tpd")


def _models_of(registry: Registry, name: str) -> dict[str, Any]:
    """JSON-ready view of provider `name`'s models: those of its plugin's table and keycycle's, its
    default model and the configured ones, each with its limits as `catalog.resolve_limits` gives them."""
    from hfs_core import catalog

    spec = registry.specs[name]
    settings = registry.config.provider(name)
    default = registry.settings.default_model(spec)
    plugin = catalog.plugin_table(spec.limits)
    keycycle = catalog.known_models(spec.keycycle_name)
    names = {*plugin.models, *(keycycle or {}), default, *settings.models}
    models = []
    for model_id in sorted(names):
        found = catalog.resolve_limits(spec, model_id, settings.models.get(model_id))
        models.append({"model": model_id, "default": model_id == default, "known": found.known,
                       "limits": found.to_dict(), "learned": None})
    return {
        "provider": name,
        "default_model": default,
        "default_from": "config" if settings.default_model else "plugin",
        "default_known": catalog.is_known_model(spec, default),
        "plugin_table": {"file": spec.limits, "source": plugin.source or None, "read": plugin.read or None,
                         "problem": plugin.problem or None} if spec.limits else None,
        "keycycle_table": spec.keycycle_name if keycycle is not None else None,
        "key_groups": [[str(item) for item in group] for group in settings.key_groups],
        "default_limits": dict(catalog.DEFAULT_LIMITS),
        "models": models,
    }


def _limit(value: int | None) -> str:
    """A limit for a table cell (``-`` when nothing limits it)."""
    return "-" if value is None else f"{value:,}"


def _sources(limits: dict[str, dict[str, Any]]) -> str:
    """Where a model's limits come from, in a few words: ``plugin; keycycle: rph tph; config: rpm``."""
    by_source: dict[str, list[str]] = {}
    for field, limit in limits.items():
        if limit["source"]:
            by_source.setdefault(limit["source"], []).append(field)
    if not by_source:
        return "-"
    main = max(by_source, key=lambda source: len(by_source[source]))
    return "; ".join([main, *(f"{source}: {' '.join(fields)}" for source, fields in by_source.items()
                              if source != main)])


def cmd_models(args: argparse.Namespace, log_filter: LogFilter) -> int:
    """Show a provider's models with their per-key limits and where each limit came from."""
    registry, _ = open_registry(log_filter)
    names = sorted(registry.specs)
    if args.provider is not None:
        wanted = args.provider.strip().lower()
        if wanted not in registry.specs:
            import difflib

            near = difflib.get_close_matches(wanted, names, n=1)
            raise CliError(f"unknown provider {wanted!r}; installed: {', '.join(names) or 'none'}",
                           f"did you mean {near[0]!r}?" if near else "run `hfs providers` to see the installed plugins")
        names = [wanted]
    tables = [_models_of(registry, name) for name in names]
    if args.json:
        print_json(tables[0] if args.provider is not None else {"providers": tables})
        return 0
    if not tables:
        raise CliError("no provider plugins are installed", FIRST_PLUGIN)
    for index, shown in enumerate(tables):
        if index:
            out()
        name = shown["provider"]
        rows: list[list[Cell]] = []
        for m in shown["models"]:
            mark: Cell = ("*", "bold green") if m["default"] else ""
            model: Cell = (m["model"], "bold") if m["default"] else m["model"]
            rows.append([mark, model, *(_limit(m["limits"][f]["value"]) for f in _SHOWN), _sources(m["limits"])])
        groups = shown["key_groups"]
        per = f"per key group ({key_groups_text(groups)}), other keys per key" if groups else "per key"
        table(["", "MODEL", *(f.upper() for f in _SHOWN), "FROM"], rows, right=set(range(2, 2 + len(_SHOWN))),
              title=f"{name}: {plural(len(rows), 'model')} (limits {per}; * the default model)")
        plugin = shown["plugin_table"]
        if plugin and plugin["problem"]:
            out(f"  warning: the plugin's limit table {plugin['problem']}")
        elif plugin:
            out(f"  plugin: limits from {plugin['source']} (read {plugin['read']})")
        default = shown["default_limits"]
        where = f'[providers.{name}.models."MODEL"] in {registry.config.source or "hfs.toml"}'
        out(f"  other models: the conservative default, RPM {default['rpm']}, RPH {default['rph']}, "
            f"RPD {default['rpd']}, tokens unlimited; set their limits under {where}")
        if not shown["default_known"]:
            source = (f"[providers.{name}] default_model in {registry.config.source_name}"
                      if shown["default_from"] == "config" else f"the {name} plugin")
            out(f"  warning: the default model {shown['default_model']!r} (from {source}) is in no limit table; "
                "it is held to the conservative default")
    return 0
