"""``hfs providers``: every discovered plugin, its provider's keys, default model and health, and the tiers."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hfs_core.cli.common import open_registry
from hfs_core.cli.output import Cell, LogFilter, out, plural, print_json, table
from hfs_core.install import FIRST_PLUGIN
from hfs_core.plugin import Problem

if TYPE_CHECKING:
    from hfs_core.env import EnvReport
    from hfs_core.registry import Registry


def provider_status(report: EnvReport) -> str:
    """One word for a provider's state: ok, warnings, error, no keys or disabled."""
    if not report.enabled:
        return "disabled"
    if not report.configured:
        return "no keys"
    if report.errors:
        return "error"
    return "warnings" if report.problems else "ok"


_STATUS_STYLE = {"ok": "green", "warnings": "yellow", "no keys": "red", "error": "red", "disabled": "dim"}


def _hint_with_docs(problem: Problem, docs_url: str) -> str:
    """The problem's hint, plus where to get keys when none are set."""
    if docs_url and "is not set" in problem.message:
        return f"{problem.hint}; get keys at {docs_url}" if problem.hint else f"get keys at {docs_url}"
    return problem.hint


def key_groups_text(groups: Sequence[Sequence[str]]) -> str:
    """A provider's key groups in a few characters: ``1-3; 4,5,6`` (each group's key numbers)."""
    return "; ".join(",".join(group) for group in groups)


def provider_entries(registry: Registry) -> list[dict[str, Any]]:
    """One JSON-ready entry per loaded provider, in name order."""
    entries = []
    plugins = {p.provider: p for p in registry.plugins if p.state == "loaded"}
    for name, spec in sorted(registry.specs.items()):
        report = registry.environment_status[name]
        plugin = plugins.get(name)
        entries.append({
            "name": name,
            "plugin": plugin.name if plugin else None,
            "distribution": plugin.distribution if plugin else None,
            "version": plugin.version if plugin else None,
            "hooks": list(plugin.hooks) if plugin else [],
            "default_model": registry.settings.default_model(spec),
            "keys_found": report.keys_found,
            "expected_keys": report.expected,
            "expected_keys_from": "config" if registry.config.provider(name).expected_keys else "plugin",
            "enabled": report.enabled,
            "configured": report.configured,
            "healthy": report.healthy,
            "status": provider_status(report),
            "key_variables": [spec.count_var, f"{spec.env_prefix}_API_KEY_<i>"],
            "key_groups": [[str(item) for item in group] for group in registry.config.provider(name).key_groups],
            "docs_url": spec.docs_url or None,
            "problems": [{**p.to_dict(), "hint": _hint_with_docs(p, spec.docs_url)} for p in report.problems],
            "notes": list(report.notes),
        })
    return entries


def tier_listing(registry: Registry) -> list[dict[str, Any]]:
    """One JSON-ready entry per tier, its entries in order of preference and whether each can serve calls."""
    return [{
        "name": name,
        "source": registry.tiers_source,
        "entries": [{"entry": e.name, "provider": e.provider, "model": e.model, "usable": e.problem is None,
                     "known_model": e.known_model, "problem": e.problem} for e in registry.tier_entries(name)],
    } for name in registry.tiers]


def _tier_rows(tiers: Sequence[Mapping[str, Any]], status: Mapping[str, str]) -> list[list[Cell]]:
    """Rows of the tiers table: one per entry, the tier named on its first. An entry whose provider is
    listed above (`status`: each listed provider's) but cannot serve says only the provider's status:
    its row and the Problems section say why, once."""
    rows: list[list[Cell]] = []
    for tier in tiers:
        for number, entry in enumerate(tier["entries"], 1):
            if entry["problem"] is not None:
                state: Cell = ("unusable", "red")
                listed = status.get(entry["provider"])
                note = f"{entry['provider']}: {listed} (see above)" if listed else str(entry["problem"]).split("; ")[0]
            elif entry["known_model"] is False:
                state, note = ("ok", "yellow"), "no limit table knows the model: the conservative default applies"
            else:
                state, note = ("ok", "green"), ""
            rows.append([tier["name"] if number == 1 else "", str(number), entry["entry"], state, note])
    return rows


def failed_plugins(registry: Registry) -> list[dict[str, Any]]:
    """JSON-ready entries for the plugins that failed to load."""
    return [{"name": p.name, "distribution": p.distribution, "version": p.version, "error": p.error}
            for p in registry.plugins if p.state == "failed"]


def cmd_providers(args: argparse.Namespace, log_filter: LogFilter) -> int:
    """List every discovered plugin with its provider's keys, default model and health."""
    registry, config_problem = open_registry(log_filter, keep_going=True)
    entries = provider_entries(registry)
    failed = failed_plugins(registry)
    skipped = [p.to_dict() for p in registry.plugins if p.state == "skipped"]
    problems = ([config_problem] if config_problem else []) + registry.problems
    tiers = tier_listing(registry)
    if args.json:
        print_json({
            "config": str(registry.config.source) if registry.config.source else None,
            "providers": entries,
            "tiers": tiers,
            "failed_plugins": failed,
            "skipped_plugins": skipped,
            "problems": [p.to_dict() for p in problems],
            "state": registry.state_info(),
        })
        return 0
    if not entries and not failed:
        out("No provider plugins are installed.")
        out(f"  hint: {FIRST_PLUGIN}")
    else:
        rows: list[list[Cell]] = []
        for e in entries:
            plugin = f"{e['distribution'] or e['plugin']} {e['version'] or ''}".strip()
            keys = str(e["keys_found"])
            if e["expected_keys_from"] == "config":
                keys += f"/{e['expected_keys']}"
            rows.append([e["name"], plugin, ", ".join(e["hooks"]), e["default_model"], keys,
                         (e["status"], _STATUS_STYLE[e["status"]]), _note(e)])
        for f in failed:
            plugin = f"{f['distribution'] or '?'} {f['version'] or ''}".strip()
            rows.append([f["name"], plugin, "-", "-", "-", ("failed", "red"), f["error"] or ""])
        table(["PROVIDER", "PLUGIN", "HOOKS", "DEFAULT MODEL", "KEYS", "STATUS", "NOTES"], rows, right={4})
    grouped = [e for e in entries if e["key_groups"]]
    if grouped:
        out("\nKey groups (the keys of a group share each limit as one budget; other keys have one each):")
        for e in grouped:
            out(f"  {e['name']}: {key_groups_text(e['key_groups'])}")
    if tiers:
        out()
        table(["TIER", "#", "ENTRY", "STATUS", "NOTES"], _tier_rows(tiers, {e["name"]: e["status"] for e in entries}),
              right={1},
              title=f"Tiers ({registry.tiers_source}), each entry in order of preference:")
    if skipped:
        names = ", ".join(p["name"] for p in skipped)
        out(f"\nInstalled but not loaded (HFS_PLUGINS or `plugins` in the config): {names}")
    _print_problems(problems, entries)
    config = (f"{config_problem.variable} (malformed: the registry does not start until it is fixed; listed "
              "here as with no config file)") if config_problem else registry.config.source_name
    out(f"\nConfig: {config}")
    out(f"State: {describe_state(registry.state_info())}")
    return 0


def describe_state(info: Mapping[str, Any]) -> str:
    """Where the pools keep their state, in a few words (from `Registry.state_info`)."""
    from hfs_core.variables import STATE_URL_ENV

    if info["kind"] != "redis":
        return f"in this process (set {STATE_URL_ENV} or [state] url to share pools between processes)"
    return f"shared through Redis at {info['url']} (namespace {info['namespace']}, from {info['source']})"


def _note(entry: Mapping[str, Any]) -> str:
    """The short NOTES cell of `hfs providers`: what to set, the first error, or a warning count."""
    problems = entry["problems"]
    errors = [p for p in problems if p["severity"] == "error"]
    if not entry["enabled"]:
        return "disabled in the config"
    if not entry["configured"] and errors and "is not set" in errors[0]["message"]:
        count_var, key_var = entry["key_variables"]
        return f"set {count_var} and {key_var}"
    if errors:
        return f"{errors[0]['variable']} {errors[0]['message']}"
    warnings = len(problems)
    return plural(warnings, "warning") if warnings else ""


def _print_problems(problems: Sequence[Problem], entries: Sequence[Mapping[str, Any]]) -> None:
    """The Problems section of `hfs providers`: every problem of enabled providers, with its hint."""
    lines: list[tuple[str, str, str, str]] = [("", p.severity, f"{p.variable} {p.message}", p.hint) for p in problems]
    for e in entries:
        if e["enabled"]:
            lines += [(e["name"], p["severity"], f"{p['variable']} {p['message']}", p["hint"]) for p in e["problems"]]
    if not lines:
        return
    out("\nProblems:")
    width = max(len(scope) for scope, *_ in lines)
    for scope, severity, message, hint in lines:
        out(f"  {scope.ljust(width)}  {severity:<7}  {message}")
        if hint:
            out(f"  {'':<{width}}  {'':<7}  -> {hint}")

