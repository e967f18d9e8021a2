"""``hfs status``: every key of every pool now (the fleet's, over Redis), as a table, as JSON, or live."""

from __future__ import annotations

import argparse
import datetime
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hfs_core.cli.common import open_registry
from hfs_core.cli.output import Cell, LogFilter, out, print_json, scrub, table

if TYPE_CHECKING:
    from hfs_core.registry import Registry

HEADERS = ("PROVIDER", "KEY", "GROUP", "STATE", "LEFT", "FLYING", "MODEL", "RPM", "RPD", "TPM", "TPD", "REASON")
_RIGHT = (5, 7, 8, 9, 10)
_STYLES = {"ready": "green", "cooling": "yellow", "quota": "magenta", "dead": "red"}
REFRESH = 1.0
"""Seconds between two frames of ``hfs status --watch``."""


def _left(until: str | None, now: float) -> str:
    """The time left until `until` (ISO-8601), as ``42s``, ``3m05s`` or ``2h14m`` ("" for none)."""
    if until is None:
        return ""
    seconds = max(0, int(datetime.datetime.fromisoformat(until.replace("Z", "+00:00")).timestamp() - now))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _used(windows: dict[str, Any] | None, name: str) -> str:
    """``used/limit`` of one window (``-`` for what is not counted or not limited)."""
    if windows is None:
        return ""
    used, limit = windows["used"][name], windows["limits"][name]
    if name == "rpm" and windows["learned"] is not None:
        limit = f"{windows['learned']['rpm']}*"
    return f"{'-' if used is None else used}/{'-' if limit is None else limit}"


def rows(status: dict[str, Any], defaults: dict[str, str]) -> list[list[Cell]]:
    """One row per key of `status` (`Registry.status`), its provider's default model's windows shown
    (`defaults`: the default model of each provider)."""
    now = time.time()
    found: list[list[Cell]] = []
    for name, provider in status["providers"].items():
        if not provider["keys"]:
            found.append([name, "", "", ("no pool", "red"), "", "", "", "", "", "", "", provider.get("problem", "")])
        for key in provider["keys"]:
            models = key["models"]
            model = defaults.get(name, "") if defaults.get(name) in models else next(iter(models), "")
            windows = models.get(model)
            found.append([name, key["key"], "" if key["group"] is None else f"#{key['group']}",
                          (key["state"], _STYLES.get(key["state"], "")), _left(key["until"], now),
                          str(key["in_flight"]), model, *(_used(windows, w) for w in ("rpm", "rpd", "tpm", "tpd")),
                          key["reason"] or ""])
    return found


def _title(status: dict[str, Any]) -> str:
    state = status["state"]
    where = f"shared through Redis at {state['url']} (namespace {state['namespace']})" \
        if state["kind"] == "redis" else "this process only"
    return f"Keys now: {where}; * a per-minute cap learned from a 429"


def _frame(registry: Registry, providers: Sequence[str] | None, defaults: dict[str, str], count: int) -> Any:
    """One frame of ``--watch``: the table, and when it was read."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    status = registry.status(providers)
    found = rows(status, defaults)
    grid = Table(title=scrub(_title(status)), title_justify="left", header_style="bold", box=None, pad_edge=False)
    for index, header in enumerate(HEADERS):
        grid.add_column(header, justify="right" if index in _RIGHT else "left", overflow="fold")
    for row in found:
        grid.add_row(*(Text(scrub(c if isinstance(c, str) else c[0]), style="" if isinstance(c, str) else c[1])
                       for c in row))
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    return Group(grid, Text(f"updated {stamp} (frame {count}); every {REFRESH:g}s, Ctrl-C to quit", style="dim"))


def _watch(registry: Registry, providers: Sequence[str] | None, defaults: dict[str, str]) -> int:
    """Redraw the table every `REFRESH` seconds on Rich's Live display until Ctrl-C (exit 0, as top)."""
    from rich.live import Live

    count = 1
    try:
        with Live(_frame(registry, providers, defaults, count), auto_refresh=False) as live:
            while True:
                time.sleep(REFRESH)
                count += 1
                live.update(_frame(registry, providers, defaults, count), refresh=True)
    except KeyboardInterrupt:
        return 0


def cmd_status(args: argparse.Namespace, log_filter: LogFilter) -> int:
    registry, _ = open_registry(log_filter)
    try:
        providers = [args.provider] if args.provider else None
        defaults = {name: registry.settings.default_model(spec) for name, spec in registry.specs.items()}
        if args.watch:
            return _watch(registry, providers, defaults)
        status = registry.status(providers)
        if args.json:
            print_json(status)
            return 0
        found = rows(status, defaults)
        if not found:
            out("No provider has keys: run `hfs providers` to see which variables to set.")
            return 0
        table(HEADERS, found, right=_RIGHT, title=_title(status))
        return 0
    finally:
        registry.shutdown()
