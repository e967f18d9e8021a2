"""The ``hfs`` command: list providers, check a deployment, show models and usage, ask a model.

``hfs providers``, ``hfs check``, ``hfs models`` and ``hfs --help`` stay light: they import
neither agno, keycycle nor a provider SDK (nor rich, unless a table goes to a terminal, nor
SQLAlchemy, except to reach the usage database). ``hfs ask`` loads what a call needs.

Output rules: tables on stdout (rich on a terminal, aligned plain text otherwise, JSON with
``--json``); diagnostics on stderr. An error is one line plus a hint and exit status 1 (a
traceback with ``--debug`` or ``HFS_DEBUG=1``); bad usage exits 2. A key is never shown
beyond its last 4 characters.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from hfs_core import __version__
from hfs_core.env import mask_key, redact_url
from hfs_core.errors import ConfigError
from hfs_core.plugin import Problem

if TYPE_CHECKING:
    from hfs_core.env import EnvReport
    from hfs_core.pool import KeyPool
    from hfs_core.registry import Registry

PROG = "hfs"
DB_TIMEOUT = 3.0
"""Seconds `hfs check` and `hfs usage` give the usage database to answer."""
ASK_TIMEOUT = 60.0
"""Default seconds `hfs ask` may wait for a free key (and spend in back-off)."""
WAIT_NOTICE_EVERY = 10.0
"""While `hfs ask` waits for a key, it repeats its notice this often (seconds)."""

Cell = str | tuple[str, str]
"""A table cell: its text, or (text, rich style) for terminals."""


class CliError(Exception):
    """A failure the user can fix: shown as one line and a hint, exit status 1."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


# -- secrets and logging -----------------------------------------------------------------

_SECRETS: set[str] = set()


def _remember_secrets(env: Mapping[str, str]) -> None:
    """Note every API key in `env` so that nothing this command prints can contain one."""
    _SECRETS.update(v.strip() for k, v in env.items() if "_API_KEY" in k and len(v.strip()) >= 8)


def _scrub(text: str) -> str:
    """`text` with every known key cut down to its last 4 characters."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, mask_key(secret))
    return text


_THIRD_PARTY_ROOTS = ("agno", "agno-team", "agno-workflow")


class _LogFilter(logging.Filter):
    """Lets the registry's own messages through and keeps libraries quiet unless ``-v``.

    `muted` drops the registry's start-up messages below ERROR (``providers`` and ``check``
    print those problems themselves); `loud` names hfs_core loggers shown from INFO on.
    """

    def __init__(self, verbosity: int, debug: bool = False) -> None:
        super().__init__()
        self.verbosity = verbosity
        self.debug = debug
        self.muted = False
        self.loud: tuple[str, ...] = ()

    def show_info(self, *loggers: str) -> None:
        """Show INFO messages of these hfs_core loggers even without ``-v``."""
        self.loud = loggers
        for name in loggers:
            logger = logging.getLogger(name)
            if logger.getEffectiveLevel() > logging.INFO:
                logger.setLevel(logging.INFO)

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name == "hfs_core" or name.startswith("hfs_core."):
            if self.verbosity >= 1:
                shown = True
            elif self.muted:
                shown = record.levelno >= logging.ERROR
            else:
                shown = record.levelno >= logging.WARNING or (
                    record.levelno >= logging.INFO and any(name.startswith(n) for n in self.loud))
        else:
            floor = logging.DEBUG if self.verbosity >= 2 else logging.INFO if self.verbosity == 1 else \
                logging.WARNING if self.debug else logging.CRITICAL + 1
            shown = record.levelno >= floor
        if shown:
            record.msg = _scrub(record.getMessage())
            record.args = None
        return shown


class _Formatter(logging.Formatter):
    """``hfs: message`` for the registry, ``name: LEVEL: message`` for libraries; keys scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return _scrub(text)

    def formatMessage(self, record: logging.LogRecord) -> str:
        if record.name.startswith("hfs_core"):
            level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
            return f"{PROG}: {level}{record.getMessage()}"
        return f"{record.name}: {record.levelname}: {record.getMessage()}"


def _setup_logging(verbosity: int, debug: bool) -> _LogFilter:
    """One stderr handler on the root logger; libraries' loggers are kept from printing on their own.

    Libraries are shown from INFO with ``-v``, DEBUG with ``-vv``, and their warnings and
    errors (with tracebacks) with ``--debug``.
    """
    handler = logging.StreamHandler(sys.stderr)
    log_filter = _LogFilter(verbosity, debug)
    handler.addFilter(log_filter)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity == 1 else logging.WARNING
    root.setLevel(level)
    # Agno adopts a logger that is already configured instead of adding its own handler,
    # which would otherwise write its messages to stdout, into the answer.
    for name in _THIRD_PARTY_ROOTS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = True
    logging.captureWarnings(True)
    return log_filter


# -- output helpers ------------------------------------------------------------------------


def _is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is an interactive terminal (False for pipes, files and closed streams)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _print_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout."""
    sys.stdout.write(_scrub(json.dumps(data, indent=2, ensure_ascii=False)) + "\n")


def _out(text: str = "") -> None:
    """Print one line on stdout, keys scrubbed."""
    sys.stdout.write(_scrub(text) + "\n")


def _text(cell: Cell) -> str:
    """The text of a table cell, without its style."""
    return cell if isinstance(cell, str) else cell[0]


def _table(headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, right: Collection[int] = (),
           title: str | None = None) -> None:
    """Print a table: rich on a terminal (imported only then), aligned plain text otherwise."""
    if _is_terminal(sys.stdout):
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
        for index, header in enumerate(headers):  # on a narrow terminal long cells wrap, short ones stay whole
            widest = max([len(header)] + [len(_text(row[index])) for row in rows])
            table.add_column(header, justify="right" if index in right else "left", overflow="fold",
                             no_wrap=widest <= 12)
        for row in rows:
            table.add_row(*(Text(_scrub(_text(c)), style="" if isinstance(c, str) else c[1]) for c in row))
        Console(highlight=False).print(table)
        return
    if title:
        _out(title)
    widths = [max([len(h)] + [len(_text(r[i])) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(parts).rstrip()

    _out(line(headers))
    for row in rows:
        _out(line([_text(c) for c in row]))


def _plural(count: int, word: str) -> str:
    """``1 error``, ``2 errors``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# -- the registry --------------------------------------------------------------------------


@contextlib.contextmanager
def _startup(log_filter: _LogFilter) -> Iterator[None]:
    """Keep the registry's start-up warnings off stderr while it is built."""
    log_filter.muted = True
    try:
        yield
    finally:
        log_filter.muted = False


def _open_registry(log_filter: _LogFilter, *, keep_going: bool = False) -> tuple[Registry, Problem | None]:
    """Build the registry; with `keep_going` a malformed config becomes a problem instead of an error."""
    from hfs_core.config import Config
    from hfs_core.registry import Registry

    _remember_secrets(os.environ)
    with _startup(log_filter):
        try:
            registry = Registry()
            problem = None
        except ConfigError as exc:
            if not keep_going:
                raise
            where, _, message = str(exc).partition(": ")
            problem = Problem("error", where, message or str(exc),
                              "fix the file, or point HFS_CONFIG at another one; defaults are used meanwhile")
            registry = Registry(config=Config())
    _remember_secrets(registry.env)
    return registry, problem


def _status(report: EnvReport) -> str:
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


def _provider_entries(registry: Registry) -> list[dict[str, Any]]:
    """One JSON-ready entry per loaded provider, in name order."""
    entries = []
    plugins = {p.provider: p for p in registry.plugins if p.state == "loaded"}
    for name, spec in sorted(registry.specs.items()):
        report = registry.environment_status[name]
        plugin = plugins.get(name)
        settings = registry.config.provider(name)
        entries.append({
            "name": name,
            "plugin": plugin.name if plugin else None,
            "distribution": plugin.distribution if plugin else None,
            "version": plugin.version if plugin else None,
            "default_model": settings.default_model or spec.default_model,
            "keys_found": report.keys_found,
            "expected_keys": report.expected,
            "enabled": report.enabled,
            "configured": report.configured,
            "healthy": report.healthy,
            "status": _status(report),
            "key_variables": [spec.count_var, f"{spec.env_prefix}_API_KEY_<i>"],
            "docs_url": spec.docs_url or None,
            "problems": [{**p.to_dict(), "hint": _hint_with_docs(p, spec.docs_url)} for p in report.problems],
        })
    return entries


def _failed_plugins(registry: Registry) -> list[dict[str, Any]]:
    """JSON-ready entries for the plugins that failed to load."""
    return [{"name": p.name, "distribution": p.distribution, "version": p.version, "error": p.error}
            for p in registry.plugins if p.state == "failed"]


# -- hfs providers -------------------------------------------------------------------------


def cmd_providers(args: argparse.Namespace, log_filter: _LogFilter) -> int:
    """List every discovered plugin with its provider's keys, default model and health."""
    registry, config_problem = _open_registry(log_filter, keep_going=True)
    entries = _provider_entries(registry)
    failed = _failed_plugins(registry)
    skipped = [p.to_dict() for p in registry.plugins if p.state == "skipped"]
    problems = ([config_problem] if config_problem else []) + registry.problems
    if args.json:
        _print_json({
            "config": str(registry.config.source) if registry.config.source else None,
            "providers": entries,
            "failed_plugins": failed,
            "skipped_plugins": skipped,
            "problems": [p.to_dict() for p in problems],
        })
        return 0
    if not entries and not failed:
        _out("No provider plugins are installed.")
        _out("  hint: pip install hfs-provider-groq (or -cerebras, -gemini, -openrouter)")
    else:
        rows: list[list[Cell]] = []
        for e in entries:
            plugin = f"{e['distribution'] or e['plugin']} {e['version'] or ''}".strip()
            rows.append([e["name"], plugin, e["default_model"], f"{e['keys_found']}/{e['expected_keys']}",
                         (e["status"], _STATUS_STYLE[e["status"]]), _note(e)])
        for f in failed:
            plugin = f"{f['distribution'] or '?'} {f['version'] or ''}".strip()
            rows.append([f["name"], plugin, "-", "-", ("failed", "red"), f["error"] or ""])
        _table(["PROVIDER", "PLUGIN", "DEFAULT MODEL", "KEYS", "STATUS", "NOTES"], rows, right={3})
    if skipped:
        names = ", ".join(p["name"] for p in skipped)
        _out(f"\nInstalled but not loaded (HFS_PLUGINS or `plugins` in the config): {names}")
    _print_problems(problems, entries)
    config = f"{config_problem.variable} (malformed; defaults used)" if config_problem else registry.config.source_name
    _out(f"\nConfig: {config}")
    return 0


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
    return _plural(warnings, "warning") if warnings else ""


def _print_problems(problems: Sequence[Problem], entries: Sequence[Mapping[str, Any]]) -> None:
    """The Problems section of `hfs providers`: every problem of enabled providers, with its hint."""
    lines: list[tuple[str, str, str, str]] = [("", p.severity, f"{p.variable} {p.message}", p.hint) for p in problems]
    for e in entries:
        if e["enabled"]:
            lines += [(e["name"], p["severity"], f"{p['variable']} {p['message']}", p["hint"]) for p in e["problems"]]
    if not lines:
        return
    _out("\nProblems:")
    width = max(len(scope) for scope, *_ in lines)
    for scope, severity, message, hint in lines:
        _out(f"  {scope.ljust(width)}  {severity:<7}  {message}")
        if hint:
            _out(f"  {'':<{width}}  {'':<7}  -> {hint}")


# -- hfs check -----------------------------------------------------------------------------


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


@dataclass
class DbProbe:
    """Whether the usage database answered; the URL is shown with its password hidden."""

    url: str
    source: str
    reachable: bool
    detail: str
    exists: bool = True
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _db_source(registry: Registry) -> str:
    """Where the usage database URL comes from: TIDB_DB_URL, the config file, or the default."""
    from hfs_core.registry import DB_URL_ENV

    if (registry.env.get(DB_URL_ENV) or "").strip():
        return DB_URL_ENV
    if registry.config.usage_db_url:
        return f"usage_db_url in {registry.config.source_name}"
    return "default"


def _sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL (None for memory or URI databases and other backends)."""
    match = re.match(r"^sqlite(\+\w+)?:///([^?]*)", url)
    if not match or match.group(2) in ("", ":memory:") or match.group(2).startswith("file:"):
        return None
    return Path(match.group(2))


def _db_error(exc: BaseException, url: str) -> str:
    """One line about a database failure, with the URL's password hidden."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    text = text.replace(url, redact_url(url))
    password = re.match(r"^[A-Za-z0-9+.\-]+://[^:/@?#]*:([^@/?#]*)@", url)
    if password and password.group(1):
        text = text.replace(password.group(1), "***")
    return text


def _connect(url: str, timeout: float) -> Any:
    """A SQLAlchemy engine that gives up connecting after `timeout` seconds where the driver allows."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    backend = url.split(":", 1)[0].split("+", 1)[0].lower()
    connect_args: dict[str, Any] = {}
    if backend in ("mysql", "mariadb", "postgresql", "postgres"):
        connect_args["connect_timeout"] = max(1, int(timeout))
    elif backend == "sqlite":
        connect_args["timeout"] = timeout
    return create_engine(url, connect_args=connect_args, poolclass=NullPool)


def _with_deadline(work: Callable[[], Any], seconds: float) -> Any:
    """Run `work` in a daemon thread; raise TimeoutError if it has not finished after `seconds`."""
    result: list[Any] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="hfs-db-probe", daemon=True)
    thread.start()
    thread.join(seconds)
    if failure:
        raise failure[0]
    if not result:
        raise TimeoutError(f"no answer within {seconds:g}s")
    return result[0]


def probe_db(url: str, source: str, timeout: float = DB_TIMEOUT) -> DbProbe:
    """Check that the usage database at `url` can be reached (a missing SQLite file is fine)."""
    shown = redact_url(url)
    path = _sqlite_path(url)
    if path is not None and not path.exists():
        directory = path.parent
        if directory.is_dir() and os.access(directory, os.W_OK):
            return DbProbe(shown, source, True, "does not exist yet; it is created by the first call", exists=False)
        return DbProbe(shown, source, False, f"directory {directory} does not exist or is not writable",
                       exists=False, error="not writable")
    try:
        from sqlalchemy import text

        engine = _connect(url, timeout)

        def select_one() -> bool:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True

        try:
            _with_deadline(select_one, timeout + 2)
        finally:
            engine.dispose()
    except Exception as exc:
        error = _db_error(exc, url)
        return DbProbe(shown, source, False, f"unreachable: {error}", error=error)
    return DbProbe(shown, source, True, "reachable")


def _check_findings(registry: Registry, config_problem: Problem | None, skip_db: bool
                    ) -> tuple[list[Finding], dict[str, Any]]:
    """Everything `hfs check` reports, and the usage database probe as JSON."""
    findings: list[Finding] = []
    if config_problem:
        findings.append(Finding("config", "error", config_problem.variable, config_problem.message,
                                config_problem.hint))
    findings += [Finding("global", p.severity, p.variable, p.message, p.hint) for p in registry.problems]
    for plugin in registry.plugins:
        if plugin.state == "failed":
            dist = plugin.distribution or plugin.name
            findings.append(Finding(
                f"plugin {plugin.name}", "error", f"{dist} {plugin.version or ''}".strip(), plugin.error or "failed",
                f"reinstall it (pip install --force-reinstall {dist}) or remove it (pip uninstall {dist})"))
    enabled = 0
    for entry in _provider_entries(registry):
        name = entry["name"]
        if not entry["enabled"]:
            findings.append(Finding(name, "info", "enabled", f"disabled in {registry.config.source_name}"))
            continue
        enabled += 1
        if entry["healthy"]:
            findings.append(Finding(name, "ok", "", f"{entry['keys_found']} keys (expected "
                                    f"{entry['expected_keys']}), default model {entry['default_model']}"))
        elif not any(p["severity"] == "error" for p in entry["problems"]):
            findings.append(Finding(name, "error", "", "not usable", "run `hfs providers` for details"))
        for p in entry["problems"]:
            findings.append(Finding(name, p["severity"], p["variable"], p["message"], p["hint"]))
    if enabled == 0:
        findings.append(Finding("global", "error", "", "no provider is installed and enabled",
                                "pip install hfs-provider-groq (or another provider) and enable it"))
    usage: dict[str, Any] = {"checked": False}
    url = registry.usage_url()
    if url is None:
        findings.append(Finding("usage db", "info", "track_usage", "usage tracking is off"))
    elif skip_db:
        usage = {"checked": False, "url": redact_url(url), "source": _db_source(registry)}
        findings.append(Finding("usage db", "info", redact_url(url), "not checked (--skip-db)"))
    else:
        probe = probe_db(url, _db_source(registry))
        usage = {"checked": True, "url": probe.url, "source": probe.source, "reachable": probe.reachable,
                 "exists": probe.exists, "error": probe.error}
        source = "the SQLite default" if probe.source == "default" else probe.source
        message = f"({source}) {probe.detail}"
        if probe.reachable:
            findings.append(Finding("usage db", "ok", probe.url, message))
        else:
            findings.append(Finding("usage db", "error", probe.url, message,
                                    "start the database or fix the URL; calls go on but usage rows wait "
                                    "in memory and rate windows are not restored on restart"))
    return findings, usage


def cmd_check(args: argparse.Namespace, log_filter: _LogFilter) -> int:
    """Check plugins, keys, configuration and the usage database; exit 1 on any error."""
    registry, config_problem = _open_registry(log_filter, keep_going=True)
    findings, usage = _check_findings(registry, config_problem, args.skip_db)
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    reports = [r for r in registry.environment_status.values() if r.enabled]
    healthy = sum(r.healthy for r in reports)
    failed = errors > 0 or (args.strict and warnings > 0)
    code = 1 if failed else 0
    if args.json:
        _print_json({
            "ok": not failed,
            "exit_code": code,
            "strict": args.strict,
            "config": str(registry.config.source) if registry.config.source else None,
            "summary": {"errors": errors, "warnings": warnings, "healthy": healthy, "enabled": len(reports)},
            "providers": {r.provider: {**r.to_dict(), "status": _status(r)}
                          for r in registry.environment_status.values()},
            "failed_plugins": _failed_plugins(registry),
            "usage_db": usage,
            "findings": [f.to_dict() for f in findings],
        })
        return code
    config = config_problem.variable if config_problem else registry.config.source_name
    _out(f"hfs check (config: {config})")
    width = max([len(f.scope) for f in findings] + [8])
    for f in findings:
        subject = f"{f.variable} {f.message}" if f.variable else f.message
        _out(f"  {f.severity:<7}  {f.scope.ljust(width)}  {subject}")
        if f.hint:
            _out(f"  {'':<7}  {'':<{width}}  -> {f.hint}")
    verdict = "FAILED" if failed else "OK"
    strict = " (--strict: warnings fail)" if args.strict and warnings and not errors else ""
    _out(f"{verdict}{strict}: {_plural(errors, 'error')}, {_plural(warnings, 'warning')}; "
         f"{healthy}/{len(reports)} enabled providers healthy")
    return code


# -- hfs models ----------------------------------------------------------------------------


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


def cmd_models(args: argparse.Namespace, log_filter: _LogFilter) -> int:
    """Show the models keycycle knows for a provider, with their per-key limits."""
    registry, _ = _open_registry(log_filter)
    names = sorted(registry.specs)
    if args.provider is not None:
        wanted = args.provider.strip().lower()
        if wanted not in registry.specs:
            raise CliError(f"unknown provider {wanted!r}; installed: {', '.join(names) or 'none'}",
                           "run `hfs providers` to see the installed plugins")
        names = [wanted]
    tables = [_models_of(registry, name) for name in names]
    if args.json:
        _print_json(tables[0] if args.provider is not None else {"providers": tables})
        return 0
    if not tables:
        raise CliError("no provider plugins are installed", "pip install hfs-provider-groq")
    for index, table in enumerate(tables):
        if index:
            _out()
        name = table["provider"]
        if table["keycycle_table"] is None:
            _out(f"{name}: keycycle has no limit table for this provider; default model {table['default_model']}")
            continue
        rows: list[list[Cell]] = []
        for m in table["models"]:
            mark: Cell = ("*", "bold green") if m["default"] else ""
            model: Cell = (m["model"], "bold") if m["default"] else m["model"]
            rows.append([mark, model, _limit(m["rpm"]), _limit(m["tpm"]), _limit(m["rpd"]),
                         "default" if m["default"] else ""])
        _table(["", "MODEL", "RPM", "TPM", "RPD", ""], rows, right={2, 3, 4},
               title=f"{name}: {_plural(len(rows), 'model')} keycycle knows (limits per key)")
        fallback = table["fallback_limits"]
        if fallback:
            _out(f"  other models get keycycle's default row: RPM {_limit(fallback['rpm'])}, "
                 f"TPM {_limit(fallback['tpm'])}, RPD {_limit(fallback['rpd'])}")
        if table["default_known"] is False:
            source = (f"[providers.{name}] default_model in {registry.config.source_name}"
                      if table["default_from"] == "config" else f"the {name} plugin")
            _out(f"  warning: the default model {table['default_model']!r} (from {source}) is not in "
                 f"keycycle's table; its limits fall back to the default row")
    return 0


# -- hfs ask -------------------------------------------------------------------------------


def _read_prompt(words: Sequence[str]) -> str:
    """The prompt from the words given, or from stdin for ``-``."""
    if list(words) == ["-"]:
        if _is_terminal(sys.stdin):
            print(f"{PROG}: reading the prompt from stdin (end with Ctrl-D)", file=sys.stderr)
        return sys.stdin.read()
    return " ".join(words)


def _choose_provider(registry: Registry, args: argparse.Namespace) -> tuple[str, str | None]:
    """The provider (and model, if named) to ask: from -m, -p, or the first with usable keys."""
    if args.model:
        provider, _, model = args.model.partition(":")
        return provider.strip().lower(), model.strip() or None
    if args.provider:
        return args.provider.strip().lower(), None
    available = registry.available_providers
    if available:
        return available[0], None
    if not registry.specs:
        raise CliError("no provider plugins are installed", "pip install hfs-provider-groq (or another provider)")
    first = registry.specs[sorted(registry.specs)[0]]
    raise CliError("no provider has usable keys",
                   f"set e.g. {first.count_var}=<count> and {first.key_var(1)}...; `hfs check` lists what is missing")


def _wait_for_key(pool: KeyPool, model_id: str, budget: float, tokens: int) -> float:
    """Wait (saying so on stderr) until the pool has a key free for `model_id`; returns the time waited.

    Gives up quietly when no key frees up within `budget`: the call then fails with the
    pool's own account of why.
    """
    start = time.monotonic()
    noticed = -WAIT_NOTICE_EVERY
    while True:
        got = pool.state.try_acquire(model_id, tokens)
        if not isinstance(got, float | int):
            pool.state.settle(got, None)
            return time.monotonic() - start
        waited = time.monotonic() - start
        status = pool.status()
        if got > budget - waited or status.live == 0:
            return waited
        if waited - noticed >= WAIT_NOTICE_EVERY:
            noticed = waited
            cooling = f", {status.cooling} cooling down" if status.cooling else ""
            print(f"{PROG}: waiting for a free {pool.provider} key for {model_id}: all {status.live} live keys "
                  f"are at their rate limits{cooling}; the next frees up in {got:.1f}s", file=sys.stderr, flush=True)
        time.sleep(min(got, WAIT_NOTICE_EVERY) + 0.01)


def _provider_error(text: str) -> str:
    """A provider's JSON error body cut down to its message."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        body = json.loads(text)
        if isinstance(body, dict):
            error = body.get("error", body)
            message = error.get("message") if isinstance(error, dict) else error
            if message:
                return str(message)
    return text


def _run_error(provider: str, model_id: str, content: Any, error_type: str | None) -> CliError:
    """A CliError for a failed Agno run (which reports errors as events, not exceptions)."""
    message = _provider_error(str(content or "the model call failed")).strip().splitlines()
    first = message[0] if message else "the model call failed"
    if error_type == "NoAvailableKeyError":
        return CliError(first, "retry later, allow a longer wait with --timeout, or add keys; "
                               "`hfs usage` shows recent use")
    if re.search(r"connection|connect|timed? ?out|name resolution|unreachable", first, re.IGNORECASE):
        return CliError(f"{provider}/{model_id}: {first}",
                        "the provider cannot be reached: check the network, a proxy, or --base-url; "
                        "-v shows the library logs")
    return CliError(f"{provider}/{model_id}: {first}",
                    f"the provider refused or failed the call; `hfs models {provider}` lists model names, "
                    "-v shows the library logs, --debug the traceback")


def _stream_answer(agent: Any, prompt: str, provider: str, model_id: str) -> int:
    """Print the answer's content deltas as they arrive."""
    wrote_newline = True
    for event in agent.run(prompt, stream=True):
        kind = getattr(event, "event", "")
        if kind == "RunContent":
            content = getattr(event, "content", None)
            if isinstance(content, str) and content:
                sys.stdout.write(content)
                sys.stdout.flush()
                wrote_newline = content.endswith("\n")
        elif kind == "RunError":
            if not wrote_newline:
                sys.stdout.write("\n")
            raise _run_error(provider, model_id, getattr(event, "content", None), getattr(event, "error_type", None))
        elif kind == "RunCancelled":
            raise KeyboardInterrupt
    if not wrote_newline:
        sys.stdout.write("\n")
    sys.stdout.flush()
    return 0


def _whole_answer(agent: Any, prompt: str, provider: str, model_id: str) -> int:
    """Print the answer once the run is complete."""
    result = agent.run(prompt)
    status = str(getattr(getattr(result, "status", None), "value", getattr(result, "status", "")))
    if status.lower() == "error":
        events = [e for e in getattr(result, "events", None) or [] if getattr(e, "event", "") == "RunError"]
        error_type = getattr(events[-1], "error_type", None) if events else None
        raise _run_error(provider, model_id, getattr(result, "content", None), error_type)
    if status.lower() == "cancelled":
        raise KeyboardInterrupt
    content = getattr(result, "content", None)
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
    return 0


def cmd_ask(args: argparse.Namespace, log_filter: _LogFilter) -> int:
    """Run one prompt through an Agno agent on a rotating model and print the answer."""
    prompt = _read_prompt(args.prompt)
    if not prompt.strip():
        raise CliError("the prompt is empty", "pass the prompt as an argument, or pipe it in with `hfs ask -`")
    os.environ.setdefault("AGNO_TELEMETRY", "false")
    if args.debug:
        os.environ.setdefault("AGNO_LOG_TRACEBACKS", "true")
    log_filter.show_info("hfs_core.pool")  # rate limits and retries met while the answer is awaited
    registry, _ = _open_registry(log_filter)
    try:
        from hfs_core.registry import CALL_DEFAULTS

        provider, model_id = _choose_provider(registry, args)
        pool = registry.pool(provider)
        model_id = model_id or registry.config.provider(provider).default_model or pool.spec.default_model
        tokens = int(CALL_DEFAULTS["estimated_tokens"])
        waited = _wait_for_key(pool, model_id, args.timeout, tokens)
        budget = round(max(0.0, args.timeout - waited), 1) if waited > 0.05 else args.timeout
        model = registry.get_model(provider, model_id, timeout=budget,
                                   estimated_tokens=tokens, **({"base_url": args.base_url} if args.base_url else {}))
        from agno.agent import Agent

        agent = Agent(model=model, telemetry=False)
        if args.stream:
            return _stream_answer(agent, prompt, provider, model_id)
        return _whole_answer(agent, prompt, provider, model_id)
    finally:
        registry.shutdown()


# -- hfs usage -----------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class Since:
    """How far back `hfs usage` looks: `seconds` (None: all time) as the user wrote it."""

    seconds: float | None
    text: str


def parse_since(text: str) -> Since:
    """``30m``, ``24h``, ``7d`` (also ``s`` and ``w``), or ``all``."""
    if text.strip().lower() == "all":
        return Since(None, "all")
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text.lower())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; use e.g. 30m, 24h, 7d or all")
    return Since(float(match.group(1)) * _UNITS[match.group(2)], text.strip())


def _provider_model(text: str) -> str:
    """Check the argument of ``-m``: PROVIDER:MODEL."""
    provider, colon, model = text.partition(":")
    if not colon or not provider.strip() or not model.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not PROVIDER:MODEL; e.g. groq:openai/gpt-oss-20b, "
                                         "or -p PROVIDER for its default model")
    return text


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


def _read_usage(url: str, since: float | None, provider: str | None) -> tuple[str, list[tuple[Any, ...]], int]:
    """(state, grouped rows, rows in the whole table); state is ok, no_database or no_table."""
    path = _sqlite_path(url)
    if path is not None and not path.exists():
        return "no_database", [], 0
    from sqlalchemy import inspect, text

    engine = _connect(url, DB_TIMEOUT)

    def query() -> tuple[str, list[tuple[Any, ...]], int]:
        with engine.connect() as conn:
            if not inspect(conn).has_table("usage_logs"):
                return "no_table", [], 0
            where: list[str] = ["1=1"]
            params: dict[str, Any] = {}
            if since is not None:
                where.append("timestamp >= :since")
                params["since"] = time.time() - since
            if provider is not None:
                where.append("provider = :provider")
                params["provider"] = provider
            rows = conn.execute(text(
                "SELECT provider, api_key_suffix, model, COUNT(*), COALESCE(SUM(tokens), 0), MAX(timestamp) "
                f"FROM usage_logs WHERE {' AND '.join(where)} GROUP BY provider, api_key_suffix, model"), params)
            total = conn.execute(text("SELECT COUNT(*) FROM usage_logs")).scalar_one()
            return "ok", [tuple(r) for r in rows], int(total)

    try:
        result: tuple[str, list[tuple[Any, ...]], int] = _with_deadline(query, DB_TIMEOUT + 2)
        return result
    except Exception as exc:
        raise CliError(f"usage database {redact_url(url)} cannot be read: {_db_error(exc, url)}",
                       "start the database or fix TIDB_DB_URL / usage_db_url; `hfs check` tests the connection"
                       ) from exc
    finally:
        engine.dispose()


def _summarise(rows: Sequence[tuple[Any, ...]], names: Mapping[str, str]) -> list[dict[str, Any]]:
    """Usage rows grouped by provider, with totals per key (last 4 characters) and per model."""
    by_provider: dict[str, dict[str, Any]] = {}
    for provider, suffix, model, requests, tokens, last in rows:
        entry = by_provider.setdefault(str(provider), {"provider": str(provider), "requests": 0, "tokens": 0,
                                                       "last": 0.0, "keys": {}, "models": {}})
        entry["requests"] += int(requests)
        entry["tokens"] += int(tokens or 0)
        entry["last"] = max(entry["last"], float(last or 0))
        suffix = str(suffix or "")
        variable = next((var for key, var in names.items() if suffix and key.endswith(suffix)), None)
        key = entry["keys"].setdefault(suffix, {"key": "…" + suffix[-4:], "variable": variable,
                                                "requests": 0, "tokens": 0})
        model_entry = entry["models"].setdefault(str(model), {"model": str(model), "requests": 0, "tokens": 0})
        for bucket in (key, model_entry):
            bucket["requests"] += int(requests)
            bucket["tokens"] += int(tokens or 0)
    result = []
    for entry in sorted(by_provider.values(), key=lambda e: e["provider"]):
        entry["keys"] = sorted(entry["keys"].values(), key=lambda k: (-k["requests"], k["key"]))
        entry["models"] = sorted(entry["models"].values(), key=lambda m: (-m["requests"], m["model"]))
        result.append(entry)
    return result


def cmd_usage(args: argparse.Namespace, log_filter: _LogFilter) -> int:
    """Requests and tokens per provider, key and model, read from the usage database."""
    from hfs_core.registry import DB_URL_ENV

    registry, _ = _open_registry(log_filter)
    url = registry.usage_url()
    for problem in registry.problems:
        if problem.variable == DB_URL_ENV:
            print(_scrub(f"{PROG}: warning: {problem.variable} {problem.message}"), file=sys.stderr)
    since: Since = args.since
    window = "all time" if since.seconds is None else f"the last {since.text}"
    provider = args.provider.strip().lower() if args.provider else None
    if url is None:
        message = f"usage tracking is off (track_usage = false in {registry.config.source_name})"
        if args.json:
            _print_json({"status": "tracking_off", "database": None, "providers": []})
        else:
            _out(f"No usage recorded: {message}.")
        return 0
    shown = redact_url(url)
    state, rows, total_rows = _read_usage(url, since.seconds, provider)
    providers = _summarise(rows, _key_names(registry))
    status = state if state != "ok" else ("ok" if providers else "no_data" if total_rows == 0 else "none_in_window")
    if args.json:
        _print_json({
            "status": status,
            "database": shown,
            "since": None if since.seconds is None else time.time() - since.seconds,
            "window": since.text,
            "provider": provider,
            "total": {"requests": sum(p["requests"] for p in providers),
                      "tokens": sum(p["tokens"] for p in providers)},
            "providers": providers,
        })
        return 0
    if status == "no_database":
        _out(f"No usage recorded yet: the usage database {shown} does not exist yet "
             "(it is created by the first call, e.g. `hfs ask`).")
        return 0
    if status == "no_table":
        _out(f"No usage recorded yet: {shown} has no usage_logs table yet (it is created by the first call).")
        return 0
    if status == "no_data":
        _out(f"No usage recorded yet in {shown}.")
        return 0
    if status == "none_in_window":
        scope = f" for {provider}" if provider else ""
        _out(f"No usage{scope} in {window} ({_plural(total_rows, 'older row')} in {shown}; try --since 7d or all).")
        return 0
    now = time.time()
    _out(f"Usage in {window} from {shown}")
    _out()
    rows_out: list[list[Cell]] = [[p["provider"], f"{p['requests']:,}", f"{p['tokens']:,}", _ago(now - p["last"])]
                                  for p in providers]
    if len(providers) > 1:
        rows_out.append([("total", "bold"), f"{sum(p['requests'] for p in providers):,}",
                         f"{sum(p['tokens'] for p in providers):,}", ""])
    _table(["PROVIDER", "REQUESTS", "TOKENS", "LAST CALL"], rows_out, right={1, 2})
    for p in providers:
        _out()
        _table(["KEY", "VARIABLE", "REQUESTS", "TOKENS"],
               [[k["key"], k["variable"] or "-", f"{k['requests']:,}", f"{k['tokens']:,}"] for k in p["keys"]],
               right={2, 3}, title=f"{p['provider']} by key")
        _out()
        _table(["MODEL", "REQUESTS", "TOKENS"],
               [[m["model"], f"{m['requests']:,}", f"{m['tokens']:,}"] for m in p["models"]],
               right={1, 2}, title=f"{p['provider']} by model")
    return 0


# -- the parser ----------------------------------------------------------------------------

_EPILOG = """\
examples:
  hfs providers                  what is installed and which variables to set
  hfs check --strict             CI / deploy gate: exit 1 on any problem
  hfs models groq                models and per-key limits keycycle knows
  hfs ask -p groq "Say hi"       one prompt through a rotating model
  hfs usage --since 7d           requests and tokens per provider, key and model

exit status: 0 ok, 1 error (one line and a hint on stderr), 2 bad usage.
environment: NUM_<P> and <P>_API_KEY_<i> per provider, TIDB_DB_URL, HFS_CONFIG,
HFS_PLUGINS, HFS_DEBUG=1 (tracebacks). A .env file in the working directory is read too.
"""

_COMMANDS: dict[str, tuple[str, str]] = {
    "providers": ("list provider plugins, their keys, default models and health", """\
examples:
  hfs providers
  hfs providers --json | jq '.providers[] | select(.healthy) | .name'

Lists every discovered plugin, including plugins that failed to load (with the
error), and for each provider which variables to set. Always exits 0; use
`hfs check` to gate on problems."""),
    "check": ("check keys, config, plugins and the usage database (exit 1 on errors)", """\
examples:
  hfs check                      exit 1 on any error
  hfs check --strict             exit 1 on warnings too
  hfs check --json --skip-db     machine-readable, without touching the database

Errors: an enabled provider without usable keys, a plugin that failed to load,
a malformed config file, a bad or unreachable usage database. Warnings: key
counts that differ from expected_keys, keys that look wrong, and the like."""),
    "models": ("list the models keycycle knows for a provider, with their limits", """\
examples:
  hfs models groq
  hfs models                     every installed provider
  hfs models gemini --json

Limits are per key and per model (RPM requests/minute, TPM tokens/minute,
RPD requests/day); * marks the provider's default model."""),
    "ask": ("send one prompt through a rotating model and stream the answer", """\
examples:
  hfs ask "What is the capital of France?"          first provider with keys
  hfs ask -p gemini "Explain key rotation briefly"
  hfs ask -m groq:openai/gpt-oss-20b --no-stream "hi"
  git diff | hfs ask -p groq -                      prompt from stdin
  hfs ask -p groq --base-url http://127.0.0.1:8000 "hi"   through a proxy

When every key is at its rate limit, hfs says on stderr which provider it waits
for and how long until a key frees up. The call is recorded in the usage database."""),
    "usage": ("requests and tokens per provider, key and model", """\
examples:
  hfs usage                      the last 24 hours
  hfs usage --since 7d --provider groq
  hfs usage --since all --json

Reads keycycle's usage_logs table in TIDB_DB_URL, usage_db_url from the config,
or the SQLite default. Keys are shown by their last 4 characters only."""),
}


def _positive_float(text: str) -> float:
    """Parse ``--timeout``: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``hfs`` and its commands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="show library logs (-v info, -vv debug)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show a traceback on errors (also HFS_DEBUG=1)")
    parser = argparse.ArgumentParser(
        prog=PROG, description="Rotating, rate-limited Agno models from many providers: inspect and use them.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common])
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__} (hfs-core, Python "
                        f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro})")
    parser.set_defaults(verbose=0, debug=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def command(name: str, handler: Callable[[argparse.Namespace, _LogFilter], int]) -> argparse.ArgumentParser:
        summary, epilog = _COMMANDS[name]
        sub = commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".",
                                  epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
                                  parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    providers = command("providers", cmd_providers)
    providers.add_argument("--json", action="store_true", help="print JSON for scripts")

    check = command("check", cmd_check)
    check.add_argument("--strict", action="store_true", help="fail on warnings too")
    check.add_argument("--skip-db", action="store_true", help="do not try to reach the usage database")
    check.add_argument("--json", action="store_true", help="print JSON for scripts")

    models = command("models", cmd_models)
    models.add_argument("provider", nargs="?", metavar="PROVIDER", help="one provider (default: all installed)")
    models.add_argument("--json", action="store_true", help="print JSON for scripts")

    ask = command("ask", cmd_ask)
    which = ask.add_mutually_exclusive_group()
    which.add_argument("-p", "--provider", metavar="PROVIDER", help="provider to use (default: first with keys)")
    which.add_argument("-m", "--model", type=_provider_model, metavar="PROVIDER:MODEL",
                       help="provider and model, e.g. groq:openai/gpt-oss-20b")
    ask.add_argument("--no-stream", dest="stream", action="store_false", help="print the answer when complete")
    ask.add_argument("--base-url", metavar="URL", help="send the call to this URL (a proxy or a local stand-in)")
    ask.add_argument("--timeout", type=_positive_float, default=ASK_TIMEOUT, metavar="S",
                     help=f"seconds to wait for a free key and in back-off (default {ASK_TIMEOUT:g})")
    ask.add_argument("prompt", nargs="+", metavar="PROMPT", help="the prompt; - reads it from stdin")

    usage = command("usage", cmd_usage)
    usage.add_argument("-p", "--provider", metavar="PROVIDER", help="only this provider")
    usage.add_argument("--since", type=parse_since, default="24h", metavar="AGE",
                       help="how far back: 30m, 24h (default), 7d, or all")
    usage.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse `argv`; with no command, print the help and exit 2."""
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        parser.exit(2)
    return args


def _env_flag(name: str) -> bool:
    """Whether environment variable `name` is set to a true value."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _error_hint(exc: BaseException) -> str:
    """What to do about an exception of the registry (or a generic pointer to --debug)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "NoAvailableKeyError" in names:
        return "retry later, allow a longer wait with --timeout, or add keys; `hfs usage` shows recent use"
    if "ProviderNotFoundError" in names:
        return "run `hfs providers` to see the installed plugins"
    if "ProviderUnavailableError" in names:
        return "run `hfs check` for every problem and how to fix it"
    if "ConfigError" in names:
        return "fix the file named above, or point HFS_CONFIG at another one"
    if "HFSError" in names:
        return "run `hfs check`"
    return "run with --debug for the traceback"


def _fail(exc: BaseException, debug: bool) -> int:
    """Report `exc` as one line and a hint on stderr (after a traceback with --debug); returns 1."""
    if debug:
        import traceback

        sys.stderr.write(_scrub("".join(traceback.format_exception(exc))))
    if isinstance(exc, CliError):
        message, hint = str(exc), exc.hint
    else:
        from hfs_core.errors import HFSError

        text = str(exc).strip().splitlines()
        first = text[0] if text else ""
        message = first if isinstance(exc, HFSError) and first else f"{type(exc).__name__}: {first}".rstrip(": ")
        hint = _error_hint(exc)
    sys.stderr.write(_scrub(f"{PROG}: error: {message}\n"))
    if hint and not (debug and "--debug" in hint):
        sys.stderr.write(_scrub(f"  hint: {hint}\n"))
    sys.stderr.flush()
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hfs`` with `argv` (default: the command line); returns the exit status."""
    parser = build_parser()
    args = _parse(parser, argv)
    debug = bool(args.debug) or _env_flag("HFS_DEBUG")
    args.debug = debug
    log_filter = _setup_logging(int(args.verbose), debug)
    handler: Callable[[argparse.Namespace, _LogFilter], int] = args.handler
    try:
        return handler(args, log_filter)
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{PROG}: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `hfs usage | head`): stop quietly.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        return _fail(exc, debug)


if __name__ == "__main__":
    sys.exit(main())
