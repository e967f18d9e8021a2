"""``hfs usage``: requests and tokens per provider, key and model, read from the usage database."""

from __future__ import annotations

import argparse
import datetime
import time
from typing import TYPE_CHECKING, Any

from hfs_core.cli.arguments import Since
from hfs_core.cli.common import CliError, open_registry
from hfs_core.cli.output import PROG, Cell, LogFilter, out, plural, print_json, spinner, table, warn

if TYPE_CHECKING:
    from hfs_core.registry import Registry
    from hfs_core.usage.queries import SpoolRead


def _ago(seconds: float) -> str:
    """An age such as ``5m ago``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{max(0, seconds):.0f}s ago"


def _key_names(registry: Registry) -> dict[str, str]:
    """Key variable by key, for naming the keys behind usage suffixes."""
    from hfs_core.plugin import declared_keys

    names: dict[str, str] = {}
    for spec in registry.specs.values():
        for variable, value in declared_keys(spec, registry.env):
            names[value] = variable
    return names


def _iso(stamp: float) -> str:
    """An epoch time as ISO 8601 in UTC, e.g. ``2026-11-28T06:45:03Z``."""
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).isoformat(timespec="seconds") \
        .replace("+00:00", "Z")


def _with_iso_times(value: Any) -> Any:
    """`value` with every ``last`` (an epoch time) turned to ISO 8601."""
    if isinstance(value, dict):
        return {k: _iso(v) if k == "last" and isinstance(v, float | int) else _with_iso_times(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_with_iso_times(v) for v in value]
    return value


def cmd_usage(args: argparse.Namespace, log_filter: LogFilter) -> int:
    """Requests and tokens per provider, key and model, read from the usage database."""
    from hfs_core.variables import DB_URL_ENVS

    registry, _ = open_registry(log_filter)
    url = registry.usage_url()
    for problem in registry.problems:
        if problem.variable in DB_URL_ENVS:
            warn(f"{PROG}: warning: {problem.variable} {problem.message}")
    since: Since = args.since
    window = "all time" if since.seconds is None else f"the last {since.text}"
    provider = args.provider.strip().lower() if args.provider else None
    if url is None:
        message = f"usage tracking is off (track_usage = false in {registry.config.source_name})"
        if args.json:
            print_json({"status": "tracking_off", "database": None, "providers": []})
        else:
            out(f"No usage recorded: {message}.")
        return 0
    from hfs_core.usage.queries import UsageQueryError, folder_problem, read_usage, sqlite_path, summarise
    from hfs_core.usage.redact import redact_url

    shown = redact_url(url)
    path = sqlite_path(url)
    unusable = folder_problem(path.parent) if path is not None and not path.exists() else None
    if unusable is not None:
        from hfs_core.settings import USAGE_FIXES

        raise CliError(f"no usage is recorded: the usage database {shown} cannot be created ({unusable})",
                       USAGE_FIXES)
    try:
        with spinner(f"reading the usage database {shown}", shown=not args.json):
            found = read_usage(url, since.seconds, provider)
    except UsageQueryError as exc:
        raise CliError(str(exc), "start the database or fix TIDB_DB_URL / usage_db_url; "
                                 "`hfs check` tests the connection") from exc
    spool = _read_spool(url)
    providers = summarise(found.rows, _key_names(registry))
    total_rows = found.total_rows
    status = found.state if found.state != "ok" else (
        "ok" if providers else "no_data" if total_rows == 0 else "none_in_window")
    if args.json:
        print_json({
            "status": status,
            "database": shown,
            "since": None if since.seconds is None else _iso(time.time() - since.seconds),
            "window": since.text,
            "provider": provider,
            "total": {"requests": sum(p["requests"] for p in providers),
                      "tokens": sum(p["tokens"] for p in providers)},
            "providers": _with_iso_times(providers),
            "spool": spool.to_dict(),
        })
        return 0
    if status == "no_database":
        out(f"No usage recorded yet: the usage database {shown} does not exist yet "
            "(it is created by the first call, e.g. `hfs ask`).")
    elif status == "no_table":
        out(f"No usage recorded yet: {shown} has no usage_logs table yet (it is created by the first call).")
    elif status == "no_data":
        out(f"No usage recorded yet in {shown}.")
    elif status == "none_in_window":
        scope = f" for {provider}" if provider else ""
        out(f"No usage{scope} in {window} ({plural(total_rows, 'older row')} in {shown}; try --since 7d or all).")
    else:
        _show_usage(providers, window, shown)
    _show_spool(spool)
    return 0


def _read_spool(url: str) -> SpoolRead:
    """The spool of rows waiting for the usage database at `url`, in the data folder."""
    from hfs_core.settings import data_dir
    from hfs_core.usage.queries import read_spool
    from hfs_core.usage.spool import SPOOL_FILE

    return read_spool(data_dir() / SPOOL_FILE, url)


def _show_spool(spool: SpoolRead) -> None:
    """A line for rows waiting in the spool, rows set aside in its dead-letter table, or a spool that cannot be read."""
    if spool.waiting:
        out(f"{plural(spool.waiting, 'row')} wait in the spool {spool.path} for the database.")
    if spool.rejected:
        out(f"{plural(spool.rejected, 'row')} refused by the database "
            f"{'is' if spool.rejected == 1 else 'are'} set aside in {spool.path} (table rejected_rows; "
            "`hfs check` says how to see them).")
    if spool.error:
        warn(f"{PROG}: warning: the usage spool {spool.path} cannot be read ({spool.error}); "
             "`hfs check` says what to do")


def _show_usage(providers: list[dict[str, Any]], window: str, shown: str) -> None:
    """The usage tables: per provider, then each provider's keys and models."""
    now = time.time()
    out(f"Usage in {window} from {shown}")
    out()
    rows_out: list[list[Cell]] = [[p["provider"], f"{p['requests']:,}", f"{p['tokens']:,}", _ago(now - p["last"])]
                                  for p in providers]
    if len(providers) > 1:
        rows_out.append([("total", "bold"), f"{sum(p['requests'] for p in providers):,}",
                         f"{sum(p['tokens'] for p in providers):,}", ""])
    table(["PROVIDER", "REQUESTS", "TOKENS", "LAST CALL"], rows_out, right={1, 2})
    for p in providers:
        out()
        table(["KEY", "VARIABLE", "REQUESTS", "TOKENS"],
              [[k["key"], k["variable"] or "-", f"{k['requests']:,}", f"{k['tokens']:,}"] for k in p["keys"]],
              right={2, 3}, title=f"{p['provider']} by key")
        out()
        table(["MODEL", "REQUESTS", "TOKENS"],
              [[m["model"], f"{m['requests']:,}", f"{m['tokens']:,}"] for m in p["models"]],
              right={1, 2}, title=f"{p['provider']} by model")

