"""Reading the usage database back: whether it answers, and requests and tokens per provider, key and model.

What ``hfs check`` and ``hfs usage`` ask of the database. SQLAlchemy is imported only to reach
an existing database; a SQLite file that does not exist is reported without opening it (and
reading never creates it). Every call gives up after `DB_TIMEOUT` seconds, so a silent server
cannot hang the caller. URLs are shown, and errors described, with the password hidden.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from hfs_core.deadline import call_with_deadline
from hfs_core.errors import HFSError
from hfs_core.usage.redact import describe_error, redact_url
from hfs_core.usage.spool import spool_key

DB_TIMEOUT = 3.0
"""Seconds the usage database is given to answer a probe or a query."""

ReadState = Literal["ok", "no_database", "no_table"]


class UsageQueryError(HFSError):
    """The usage database could not be read; the message shows the URL with its password hidden."""


@dataclass(frozen=True)
class DbProbe:
    """Whether the usage database answered; `url` is shown with its password hidden."""

    url: str
    reachable: bool
    detail: str
    exists: bool = True
    error: str | None = None


class UsageRow(NamedTuple):
    """Calls of one provider, key suffix and model: how many, their tokens, and the latest."""

    provider: str
    key_suffix: str
    model: str
    requests: int
    tokens: int
    last: float


@dataclass(frozen=True)
class UsageRead:
    """What `read_usage` found: `state`, the grouped rows in the window, and the rows in the whole table."""

    state: ReadState
    rows: list[UsageRow]
    total_rows: int


@dataclass(frozen=True)
class SpoolRead:
    """What `read_spool` found for one database: rows waiting in the spool, rows set aside in its
    dead-letter table, or why the file cannot be read (`error`)."""

    path: str
    waiting: int = 0
    rejected: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return dict(self.__dict__)


def read_spool(path: Path, url: str) -> SpoolRead:
    """The spool file `path` as it stands for the database at `url`, read without creating or changing it."""
    import sqlite3

    if not path.exists():
        return SpoolRead(str(path))
    key = spool_key(url)

    def count(conn: sqlite3.Connection, table: str) -> int:
        found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
        return int(conn.execute(f"SELECT COUNT(*) FROM {table} WHERE target = ?", (key,)).fetchone()[0]) \
            if found else 0

    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=DB_TIMEOUT)
        try:
            checked = [str(r[0]) for r in conn.execute("PRAGMA quick_check")]
            if checked != ["ok"]:
                return SpoolRead(str(path), error=f"damaged: {'; '.join(checked[:3])}")
            return SpoolRead(str(path), count(conn, "spooled_rows"), count(conn, "rejected_rows"))
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return SpoolRead(str(path), error=f"{type(exc).__name__}: {exc}")


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL (None for memory or URI databases and other backends)."""
    match = re.match(r"^sqlite(\+\w+)?:///([^?]*)", url)
    if not match or match.group(2) in ("", ":memory:") or match.group(2).startswith("file:"):
        return None
    return Path(match.group(2))


def folder_problem(directory: Path) -> str | None:
    """Why files cannot be created in `directory` (created as needed), or None if they can.

    Nothing is created: the nearest existing folder on the way must be a writable folder.
    """
    existing = directory
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder, so {directory} cannot be created"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable, so files cannot be created in {directory}"
    return None


def _engine(url: str, timeout: float) -> Any:
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


def probe_db(url: str, timeout: float = DB_TIMEOUT) -> DbProbe:
    """Check that the usage database at `url` answers ``SELECT 1`` (a missing SQLite file in a writable
    directory counts as reachable: the first call creates it)."""
    shown = redact_url(url)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        problem = folder_problem(path.parent)
        if problem is None:
            return DbProbe(shown, True, "does not exist yet; it is created by the first call", exists=False)
        return DbProbe(shown, False, f"cannot be created: {problem}", exists=False, error=problem)
    try:
        from sqlalchemy import text

        engine = _engine(url, timeout)

        def select_one() -> bool:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True

        try:
            call_with_deadline(select_one, timeout + 2, name="hfs-db-probe")
        finally:
            engine.dispose()
    except Exception as exc:
        error = describe_error(exc, url)
        return DbProbe(shown, False, f"unreachable: {error}", error=error)
    return DbProbe(shown, True, "reachable")


def read_usage(url: str, since: float | None = None, provider: str | None = None,
               timeout: float = DB_TIMEOUT) -> UsageRead:
    """Usage rows grouped by provider, key suffix and model, from the last `since` seconds (None: all time),
    of one `provider` or all; raises `UsageQueryError` when the database cannot be read."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return UsageRead("no_database", [], 0)
    from sqlalchemy import inspect, text

    def query() -> UsageRead:
        with engine.connect() as conn:
            if not inspect(conn).has_table("usage_logs"):
                return UsageRead("no_table", [], 0)
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
            grouped = [UsageRow(str(p), str(suffix or ""), str(model), int(requests), int(tokens or 0),
                                float(last or 0)) for p, suffix, model, requests, tokens, last in rows]
            return UsageRead("ok", grouped, int(total))

    engine = _engine(url, timeout)
    try:
        return call_with_deadline(query, timeout + 2, name="hfs-db-query")
    except Exception as exc:
        raise UsageQueryError(f"usage database {redact_url(url)} cannot be read: {describe_error(exc, url)}"
                              ) from exc
    finally:
        engine.dispose()


def summarise(rows: Sequence[UsageRow], key_names: Mapping[str, str]) -> list[dict[str, Any]]:
    """Rows grouped by provider (in name order), with totals per key and per model, JSON-ready.

    `key_names` maps full keys to the variables holding them; a key is shown by the last 4
    characters of its suffix and named by the variable whose key ends with that suffix.
    """
    by_provider: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = by_provider.setdefault(row.provider, {"provider": row.provider, "requests": 0, "tokens": 0,
                                                      "last": 0.0, "keys": {}, "models": {}})
        entry["requests"] += row.requests
        entry["tokens"] += row.tokens
        entry["last"] = max(entry["last"], row.last)
        suffix = row.key_suffix
        variable = next((var for key, var in key_names.items() if suffix and key.endswith(suffix)), None)
        key = entry["keys"].setdefault(suffix, {"key": "…" + suffix[-4:], "variable": variable,
                                                "requests": 0, "tokens": 0})
        model = entry["models"].setdefault(row.model, {"model": row.model, "requests": 0, "tokens": 0})
        for bucket in (key, model):
            bucket["requests"] += row.requests
            bucket["tokens"] += row.tokens
    result = []
    for entry in sorted(by_provider.values(), key=lambda e: e["provider"]):
        entry["keys"] = sorted(entry["keys"].values(), key=lambda k: (-k["requests"], k["key"]))
        entry["models"] = sorted(entry["models"].values(), key=lambda m: (-m["requests"], m["model"]))
        result.append(entry)
    return result
