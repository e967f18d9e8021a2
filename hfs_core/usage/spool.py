"""The spool: usage rows that could not reach their database, kept in a local SQLite file until it returns.

Only rows whose write failed come here (a database that answers never costs a spool write).
One file can serve several usage databases: each row is keyed by a hash of its database URL
with the password hidden, so the file holds no password and no address, and every process on
the same database and data folder shares one backlog. A row leaves the spool only after the
database committed it, so a crash or a restart loses nothing that was spooled (a crash in the
instant between the database's commit and the spool's delete writes that batch twice).

One process replays a database's backlog at a time: it holds a lease on it, renewed with
every batch and let go once the backlog is empty, that lapses `LEASE_SECONDS` after a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from hfs_core.usage.redact import redact_url

Row = tuple[str, str, str, float, int]
"""A usage row: provider, model, key suffix, timestamp, tokens."""
LEASE_SECONDS = 60.0
"""Seconds a replaying process keeps other processes off a backlog without renewing its lease."""
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spooled_rows (id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, "
    "session TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, api_key_suffix TEXT NOT NULL, "
    "timestamp REAL NOT NULL, tokens INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS spooled_rows_target ON spooled_rows (target, id)",
    "CREATE TABLE IF NOT EXISTS replay_leases (target TEXT PRIMARY KEY, session TEXT NOT NULL, until REAL NOT NULL)",
)


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

    def replay(self, write: Callable[[list[Row]], None], limit: int) -> tuple[int, int] | None:
        """Write up to `limit` waiting rows with `write`, then delete them.

        Returns (rows of this session, rows of earlier ones) written, (0, 0) when none wait,
        or None when another live process holds the lease. `write` raising leaves the rows
        spooled (and the error raised).
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
            return 0, 0
        write([(r[2], r[3], r[4], float(r[5]), int(r[6])) for r in found])
        with self._connect() as conn:
            conn.execute("DELETE FROM spooled_rows WHERE target = ? AND id <= ?", (self.key, found[-1][0]))
        own = sum(r[1] == self.session for r in found)
        return own, len(found) - own
