"""The spool: usage rows that could not reach their database, kept in a local SQLite file until it returns.

Only rows whose write failed come here (a database that answers never costs a spool write).
One file can serve several usage databases: each row is keyed by a hash of its database URL
with the password hidden, so the file holds no password and no address, and every process on
the same database and data folder shares one backlog. A row leaves the spool only after the
database committed it, so a crash or a restart loses nothing that was spooled (a crash in the
instant between the database's commit and the spool's delete writes that batch twice).

One process replays a database's backlog at a time: it holds a lease on it, renewed with
every batch and let go once the backlog is empty, that lapses `LEASE_SECONDS` after a crash.

A row that can never be written (the database refuses it, or it cannot be read back from the
file) is moved aside to the dead-letter table ``rejected_rows`` with the reason, counted and
reported by ``hfs check`` and ``hfs usage``, so it never holds up the rows behind it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfs_core.usage.redact import redact_url

Row = tuple[str, str, str, float, int]
"""A usage row: provider, model, key suffix, timestamp, tokens."""
SPOOL_FILE = "spool.sqlite3"
"""The spool's file name in the data folder."""
LEASE_SECONDS = 60.0
"""Seconds a replaying process keeps other processes off a backlog without renewing its lease."""
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spooled_rows (id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, "
    "session TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, api_key_suffix TEXT NOT NULL, "
    "timestamp REAL NOT NULL, tokens INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS spooled_rows_target ON spooled_rows (target, id)",
    "CREATE TABLE IF NOT EXISTS replay_leases (target TEXT PRIMARY KEY, session TEXT NOT NULL, until REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS rejected_rows (id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, "
    "provider, model, api_key_suffix, timestamp, tokens, reason TEXT NOT NULL, rejected_at REAL NOT NULL)",
)


@dataclass(frozen=True)
class Written:
    """What writing a batch did: the rows the database refused (index: reason), and, when it
    stopped answering part-way, the index of the first row not written (`stopped_at`).
    Every other row was written."""

    refused: dict[int, str] = field(default_factory=dict)
    stopped_at: int | None = None

    def unwritten(self, count: int) -> list[int]:
        """Indices, in a batch of `count`, of the rows neither written nor refused."""
        start = count if self.stopped_at is None else self.stopped_at
        return [i for i in range(start, count) if i not in self.refused]


@dataclass(frozen=True)
class Replayed:
    """What one replay did: rows of this process (`own`) and of earlier ones (`others`) written,
    and of each set aside (`own_rejected`, `others_rejected`); rows left spooled because the
    database stopped answering part-way (`kept`); or nothing yet (`later`: the spool could not
    be read, or another process is replaying it)."""

    own: int = 0
    others: int = 0
    own_rejected: int = 0
    others_rejected: int = 0
    kept: int = 0
    later: bool = False

    @property
    def empty(self) -> bool:
        """Whether no row waited."""
        return not self.later and self.own + self.others + self.own_rejected + self.others_rejected + self.kept == 0


def read_row(values: Sequence[Any]) -> Row:
    """A row read back from the file as a `Row`; `ValueError` saying which value is not what it should be."""
    provider, model, suffix, stamp, tokens = values
    for name, value in (("provider", provider), ("model", model), ("api_key_suffix", suffix)):
        if not isinstance(value, str):
            raise ValueError(f"{name} {value!r} is not text")
    if isinstance(stamp, str) or not math.isfinite(float(stamp)):
        raise ValueError(f"timestamp {stamp!r} is not a number")
    if isinstance(tokens, str) or float(tokens) != int(tokens):
        raise ValueError(f"tokens {tokens!r} is not a whole number")
    return provider, model, suffix, float(stamp), int(tokens)


def spool_key(url: str) -> str:
    """The spool's name for the database at `url`: a hash of the URL with its password hidden."""
    return hashlib.sha256(redact_url(url).encode()).hexdigest()[:32]


class Spool:
    """Rows waiting for the database at `url`, in the SQLite file `path` (created when first needed)."""

    def __init__(self, path: Path, url: str) -> None:
        self.path = Path(path)
        self.key = spool_key(url)
        self.session = secrets.token_hex(8)
        """This process's (this store's) rows, told apart from rows an earlier process left."""
        self._lock = threading.Lock()
        self._ready = False

    def __repr__(self) -> str:
        return f"Spool(path={str(self.path)!r})"

    @contextlib.contextmanager
    def _connect(self, create: bool = True) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode (transactions are explicit), under this spool's lock."""
        with self._lock:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            elif not self.path.exists():
                raise FileNotFoundError(self.path)
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            try:
                if not self._ready:
                    conn.execute("PRAGMA journal_mode=WAL")
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    self._ready = True
                conn.execute("PRAGMA synchronous=NORMAL")
                yield conn
            finally:
                conn.close()

    def add(self, rows: Sequence[Row]) -> None:
        """Keep `rows` (one transaction); raises `OSError` or `sqlite3.Error` when the file cannot be written."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT INTO spooled_rows (target, session, provider, model, api_key_suffix, timestamp, tokens) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", [(self.key, self.session, *row) for row in rows])
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def count(self) -> int:
        """Rows waiting for this database (0 when the file does not exist); raises like `add`."""
        try:
            with self._connect(create=False) as conn:
                return int(conn.execute("SELECT COUNT(*) FROM spooled_rows WHERE target = ?",
                                        (self.key,)).fetchone()[0])
        except FileNotFoundError:
            return 0

    def rejected(self) -> int:
        """Rows set aside for this database because it refused them or they could not be read."""
        try:
            with self._connect(create=False) as conn:
                return int(conn.execute("SELECT COUNT(*) FROM rejected_rows WHERE target = ?",
                                        (self.key,)).fetchone()[0])
        except FileNotFoundError:
            return 0

    def reject(self, rows: Sequence[tuple[Sequence[Any], str]]) -> None:
        """Set (row, reason) pairs aside in the dead-letter table; raises like `add`."""
        with self._connect() as conn:
            self._set_aside(conn, rows)

    def _set_aside(self, conn: sqlite3.Connection, rows: Sequence[tuple[Sequence[Any], str]]) -> None:
        conn.executemany(
            "INSERT INTO rejected_rows (target, provider, model, api_key_suffix, timestamp, tokens, reason, "
            "rejected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(self.key, *row, reason, time.time()) for row, reason in rows])

    def replay(self, write: Callable[[list[Row]], Written], limit: int) -> Replayed | None:
        """Write up to `limit` waiting rows with `write`, then delete them; those it refused, and
        those that cannot be read back, are set aside (`reject`).

        Returns what it did (`Replayed`, `empty` when none wait), or None when another live
        process holds the lease.
        `write` raising leaves the rows spooled (and the error raised); rows it did not reach
        stay spooled.
        """
        now = time.time()
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                held = conn.execute(
                    "INSERT INTO replay_leases (target, session, until) VALUES (?, ?, ?) "
                    "ON CONFLICT (target) DO UPDATE SET session = excluded.session, until = excluded.until "
                    "WHERE replay_leases.until < ? OR replay_leases.session = excluded.session",
                    (self.key, self.session, now + LEASE_SECONDS, now)).rowcount
                found = conn.execute(
                    "SELECT id, session, provider, model, api_key_suffix, timestamp, tokens FROM spooled_rows "
                    "WHERE target = ? ORDER BY id LIMIT ?", (self.key, limit)).fetchall() if held else []
                if held and not found:
                    conn.execute("DELETE FROM replay_leases WHERE target = ? AND session = ?", (self.key, self.session))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        if not held:
            return None
        if not found:
            return Replayed()
        readable: list[tuple[Any, ...]] = []
        rows: list[Row] = []
        aside: list[tuple[tuple[Any, ...], str]] = []
        for found_row in found:
            try:
                rows.append(read_row(found_row[2:]))
                readable.append(found_row)
            except (ValueError, TypeError, OverflowError) as exc:
                aside.append((found_row, f"unreadable in the spool: {exc}"))
        done = write(rows) if rows else Written()
        aside += [(readable[i], reason) for i, reason in done.refused.items()]
        kept = {readable[i][0] for i in done.unwritten(len(rows))}
        gone = [r for r in found if r[0] not in kept]
        set_aside = {r[0] for r, _ in aside}
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._set_aside(conn, [(r[2:], reason) for r, reason in aside])
                conn.executemany("DELETE FROM spooled_rows WHERE id = ?", [(r[0],) for r in gone])
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        own = [r[0] in set_aside for r in gone if r[1] == self.session]
        others = [r[0] in set_aside for r in gone if r[1] != self.session]
        return Replayed(own.count(False), others.count(False), own.count(True), others.count(True), len(kept))
