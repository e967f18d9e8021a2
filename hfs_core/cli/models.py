"""``hfs models``: the models keycycle knows for a provider, with their per-key limits."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from hfs_core.cli.common import CliError, open_registry
from hfs_core.cli.output import Cell, LogFilter, out, plural, print_json, table
from hfs_core.install import FIRST_PLUGIN

if TYPE_CHECKING:
    from hfs_core.registry import Registry


def _models_of(registry: Registry, name: str) -> dict[str, Any]:
    """JSON-ready view of the models keycycle knows for provider `name`."""
    from hfs_core import catalog

    spec = registry.specs[name]
    settings = registry.config.provider(name)
    default = settings.default_model or spec.default_model
    known = catalog.known_models(spec.keycycle_name)
    fallback = (catalog.limit_table(spec.keycycle_name) or {}).get("default")
    models = []
    for model_id, limits in sorted((known or {}).items()):
        row = {k: getattr(limits, k) for k in ("rpm", "tpm", "rpd", "rph", "tph", "tpd")}
        models.append({"model": model_id, "default": model_id == default, **row})
    return {
        "provider": name,
        "keycycle_table": spec.keycycle_name if known is not None else None,
        "default_model": default,
        "default_from": "config" if settings.default_model else "plugin",
        "default_known": None if known is None else default in known,
        "fallback_limits": None if fallback is None else
        {k: getattr(fallback, k) for k in ("rpm", "tpm", "rpd", "rph", "tph", "tpd")},
        "models": models,
    }


def _limit(value: int | None) -> str:
    """A limit for a table cell (``-`` when keycycle sets none)."""
    return "-" if value is None else f"{value:,}"


def cmd_models(args: argparse.Namespace, log_filter: LogFilter) -> int:
    """Show the models keycycle knows for a provider, with their per-key limits."""
    registry, _ = open_registry(log_filter)
    names = sorted(registry.specs)
    if args.provider is not None:
        wanted = args.provider.strip().lower()
        if wanted not in registry.specs:
            raise CliError(f"unknown provider {wanted!r}; installed: {', '.join(names) or 'none'}",
                           "run `hfs providers` to see the installed plugins")
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
        if shown["keycycle_table"] is None:
            out(f"{name}: keycycle has no limit table for this provider; default model {shown['default_model']}")
            continue
        rows: list[list[Cell]] = []
        for m in shown["models"]:
            mark: Cell = ("*", "bold green") if m["default"] else ""
            model: Cell = (m["model"], "bold") if m["default"] else m["model"]
            rows.append([mark, model, _limit(m["rpm"]), _limit(m["tpm"]), _limit(m["rpd"]),
                         "default" if m["default"] else ""])
        table(["", "MODEL", "RPM", "TPM", "RPD", ""], rows, right={2, 3, 4},
              title=f"{name}: {plural(len(rows), 'model')} keycycle knows (limits per key)")
        fallback = shown["fallback_limits"]
        if fallback:
            out(f"  other models get keycycle's default row: RPM {_limit(fallback['rpm'])}, "
                f"TPM {_limit(fallback['tpm'])}, RPD {_limit(fallback['rpd'])}")
        if shown["default_known"] is False:
            source = (f"[providers.{name}] default_model in {registry.config.source_name}"
                      if shown["default_from"] == "config" else f"the {name} plugin")
            out(f"  warning: the default model {shown['default_model']!r} (from {source}) is not in "
                f"keycycle's table; its limits fall back to the default row")
    return 0

