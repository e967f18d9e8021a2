"""``hfs check``: the registry's start-up checks, the tiers and the usage database, one finding per line;
exit 1 on errors."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hfs_core.cli.common import open_registry
from hfs_core.cli.output import LogFilter, out, plural, print_json, spinner
from hfs_core.cli.providers import describe_state, failed_plugins, provider_entries, provider_status, tier_listing
from hfs_core.install import FIRST_PLUGIN, install_command
from hfs_core.plugin import Problem

if TYPE_CHECKING:
    from hfs_core.registry import Registry


@dataclass(frozen=True)
class Finding:
    """One line of `hfs check`: what it concerns, how bad it is, and what to do."""

    scope: str
    severity: str  # "ok", "info", "warning" or "error"
    variable: str
    message: str
    hint: str = ""

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready view."""
        return dict(self.__dict__)


def _db_source(registry: Registry) -> str:
    """Where the usage database URL comes from: HFS_USAGE_DB_URL or TIDB_DB_URL, the config file, or the default."""
    var = registry.db_url_var()
    if var:
        return var
    if registry.config.usage_db_url:
        return f"usage_db_url in {registry.config.source_name}"
    return "default"


def _check_findings(registry: Registry, config_problem: Problem | None, skip_db: bool, spin: bool = False
                    ) -> tuple[list[Finding], dict[str, Any]]:
    """Everything `hfs check` reports, and the usage database probe as JSON (with a spinner on a
    terminal while it runs, when `spin`)."""
    findings: list[Finding] = []
    if config_problem:
        findings.append(Finding("config", "error", config_problem.variable, config_problem.message,
                                config_problem.hint))
    env_file = str(registry.env_file) if registry.env_file else "no .env file"
    config = f"not {config_problem.variable} (malformed)" if config_problem else registry.config.source_name
    findings.append(Finding("files", "info", "", f"read {env_file} and {config}"))
    tier_of = {f"{registry.config.source_name} [tiers.{name}]": name for name in registry.config.tiers}
    findings += [Finding(f"tier {tier_of[p.variable]}" if p.variable in tier_of else "global", p.severity,
                         p.variable, p.message, p.hint) for p in registry.problems]
    for plugin in registry.plugins:
        if plugin.state == "failed":
            dist = plugin.distribution or plugin.name
            findings.append(Finding(
                f"plugin {plugin.name}", "error", f"{dist} {plugin.version or ''}".strip(), plugin.error or "failed",
                f"reinstall it ({install_command(dist, reinstall=True)}) or remove it (pip uninstall {dist})"))
    enabled = 0
    for entry in provider_entries(registry):
        name = entry["name"]
        if not entry["enabled"]:
            findings.append(Finding(name, "info", "enabled", f"disabled in {registry.config.source_name}"))
            continue
        enabled += 1
        missing = registry.import_problem(name)
        if missing:
            entry["healthy"] = False
            findings.append(Finding(name, "error", "", missing, install_command(entry["distribution"], reinstall=True)
                                    if entry["distribution"] else "reinstall its plugin"))
        if entry["healthy"]:
            expected = f" (expected {entry['expected_keys']})" if entry["expected_keys_from"] == "config" else ""
            findings.append(Finding(name, "ok", "", f"{plural(entry['keys_found'], 'key')}{expected}, default "
                                    f"model {entry['default_model']}"))
        elif not any(p["severity"] == "error" for p in entry["problems"]):
            findings.append(Finding(name, "error", "", "not usable", "run `hfs providers` for details"))
        for p in entry["problems"]:
            findings.append(Finding(name, p["severity"], p["variable"], p["message"], p["hint"]))
        findings += [Finding(name, "info", "", note) for note in entry["notes"]]
    for tier in tier_listing(registry):
        usable = [e["entry"] for e in tier["entries"] if e["usable"]]
        if usable:
            findings.append(Finding(f"tier {tier['name']}", "ok", "", f"{len(usable)} of {len(tier['entries'])} "
                                    f"entries can serve calls ({tier['source']}): {', '.join(usable)}"))
    if enabled == 0:
        findings.append(Finding("global", "error", "", "no provider is installed and enabled",
                                f"{FIRST_PLUGIN}; enable it"))
    findings.append(_state_finding(registry, spin))
    usage: dict[str, Any] = {"checked": False}
    url = registry.usage_url()
    if url is None:
        findings.append(Finding("usage db", "info", "track_usage", "usage tracking is off"))
        return findings, usage
    from hfs_core.usage.queries import probe_db
    from hfs_core.usage.redact import redact_url

    source = _db_source(registry)
    if skip_db:
        usage = {"checked": False, "url": redact_url(url), "source": source}
        findings.append(Finding("usage db", "info", redact_url(url), "not checked (--skip-db)"))
    else:
        with spinner(f"probing the usage database {redact_url(url)}", shown=spin):
            probe = probe_db(url)
        usage = {"checked": True, "url": probe.url, "source": source, "reachable": probe.reachable,
                 "exists": probe.exists, "error": probe.error}
        message = f"({'the SQLite default' if source == 'default' else source}) {probe.detail}"
        if probe.reachable:
            findings.append(Finding("usage db", "ok", probe.url, message))
        elif not probe.exists:  # a SQLite file whose folder cannot be created (an unusable data folder)
            from hfs_core.settings import USAGE_FIXES

            findings.append(Finding("usage db", "error", probe.url, message,
                                    f"calls go on, but their usage is not recorded: {USAGE_FIXES}"))
        else:
            findings.append(Finding("usage db", "error", probe.url, message,
                                    "start the database or fix the URL; calls go on but usage rows wait "
                                    "(in the spool of the data folder, else in memory) and rate windows "
                                    "are not restored on restart"))
    spool, usage["spool"] = _spool_findings(url)
    return findings + spool, usage


def _spool_findings(url: str) -> tuple[list[Finding], dict[str, Any]]:
    """The spool of rows waiting for the usage database at `url`: a file that cannot be read, rows the
    database refused (set aside), rows waiting; and the spool as JSON."""
    from hfs_core.settings import data_dir
    from hfs_core.usage.queries import read_spool
    from hfs_core.usage.spool import SPOOL_FILE

    found = read_spool(data_dir() / SPOOL_FILE, url)
    findings = []
    if found.error is not None:
        findings.append(Finding("usage spool", "error", found.path, f"cannot be read ({found.error}): rows waiting "
                                "for the usage database are neither kept in it nor written from it",
                                f"move it aside (mv {found.path} {found.path}.damaged); the next call makes a new "
                                "one, and rows the old one held are not written"))
    if found.rejected:
        findings.append(Finding("usage spool", "warning", found.path, f"{plural(found.rejected, 'row')} the usage "
                                "database refused (or that could not be read back) set aside in its table "
                                "rejected_rows; they are not written",
                                f"see them with: sqlite3 {found.path} 'SELECT * FROM rejected_rows'; the reason "
                                "column says why each was refused"))
    if found.waiting:
        findings.append(Finding("usage spool", "info", found.path, f"{plural(found.waiting, 'row')} wait for the "
                                "usage database; the next process that reaches it writes them"))
    return findings, found.to_dict()


def _state_finding(registry: Registry, spin: bool) -> Finding:
    """Which state the pools use, and (for Redis) whether it answers."""
    info = registry.state_info()
    with spinner(f"probing the shared state {info['url']}", shown=spin and info["url"] is not None):
        probe = registry.probe_state()
    if probe is None:
        return Finding("state", "info", "", describe_state(info))
    if probe.shared:
        return Finding("state", "ok", info["url"], f"(from {info['source']}, namespace {info['namespace']}) "
                       f"{probe.detail}: pools are shared by every process pointed at it")
    return Finding("state", "error", info["url"], f"(from {info['source']}) not shared: {probe.detail}",
                   f"{probe.hint}; meanwhile each process serves on its own, holding each key to its share of "
                   "the limits, and shares again once Redis answers and allows it")


def cmd_check(args: argparse.Namespace, log_filter: LogFilter) -> int:
    """Check plugins, keys, configuration and the usage database; exit 1 on any error."""
    registry, config_problem = open_registry(log_filter, keep_going=True)
    findings, usage = _check_findings(registry, config_problem, args.skip_db, spin=not args.json)
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    reports = [r for r in registry.environment_status.values() if r.enabled]
    healthy = sum(r.healthy for r in reports)
    failed = errors > 0 or (args.strict and warnings > 0)
    code = 1 if failed else 0
    if args.json:
        print_json({
            "ok": not failed,
            "exit_code": code,
            "strict": args.strict,
            "config": str(registry.config.source) if registry.config.source else None,
            "summary": {"errors": errors, "warnings": warnings, "healthy": healthy, "enabled": len(reports)},
            "providers": {r.provider: {**r.to_dict(), "status": provider_status(r)}
                          for r in registry.environment_status.values()},
            "failed_plugins": failed_plugins(registry),
            "usage_db": usage,
            "state": registry.state_info(),
            "findings": [f.to_dict() for f in findings],
        })
        return code
    config = config_problem.variable if config_problem else registry.config.source_name
    out(f"hfs check (config: {config})")
    width = max([len(f.scope) for f in findings] + [8])
    for f in findings:
        subject = f"{f.variable} {f.message}" if f.variable else f.message
        out(f"  {f.severity:<7}  {f.scope.ljust(width)}  {subject}")
        if f.hint:
            out(f"  {'':<7}  {'':<{width}}  -> {f.hint}")
    verdict = "FAILED" if failed else "OK"
    strict = " (--strict: warnings fail)" if args.strict and warnings and not errors else ""
    out(f"{verdict}{strict}: {plural(errors, 'error')}, {plural(warnings, 'warning')}; "
        f"{healthy}/{len(reports)} enabled providers healthy")
    return code

