"""The usage database as this process reaches it: `DatabaseLink`.

It connects on first use and again after a failure (MySQL with connect/read/write timeouts,
SQLite in WAL mode, a SQLite file's folder created), writes a batch of rows in one
transaction, reads a provider's recent history within a deadline, and says once per outage
that the database is unreachable and when it is back. The usage store (`store`) decides what
to write and when.

Each row is fitted to keycycle's table first (text cut to its column with `CUT_MARK`, tokens
held to a 32-bit integer). A batch the database refuses for its data (a strict MySQL/MariaDB,
a CHECK, a NOT NULL) is written again one row at a time, and the rows it still refuses are
returned, to be set aside: one bad row never holds up the others.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hfs_core.deadline import DeadlineExceeded, call_with_deadline
from hfs_core.usage.queries import sqlite_path
from hfs_core.usage.redact import describe_error, redact_url
from hfs_core.usage.spool import Row, Written

log = logging.getLogger("hfs_core.usage")

_COLUMNS = ("provider", "model", "api_key_suffix", "timestamp", "tokens")
HISTORY_WAIT = 3.0
"""Seconds a pool being built waits for its usage history before starting with empty windows."""
CUT_MARK = "...#"
"""Ends a text value cut to fit its column, followed by 6 hex digits of the whole value's hash
(so two long model ids cut alike stay apart)."""
_MAX_TOKENS = 2**31 - 1
_REFUSAL_CODES = frozenset({1292, 1366, 3819, 4025})
"""MySQL/MariaDB errors that refuse a row's values but reach the driver as another class:
truncated or incorrect value, a CHECK constraint (MySQL, MariaDB)."""
_MYSQL_TIMEOUTS = {"connect_timeout": "5", "read_timeout": "15", "write_timeout": "15"}
"""Seconds a MySQL/TiDB connection may take to open, read or write before it counts as down.

Without them a database that stops answering (rather than refusing) would hold the writer,
and the history load of a pool being built, for as long as the TCP stack lets it."""


def with_timeouts(url: str) -> str:
    """`url`, with connect/read/write timeouts added for pymysql and mysqlclient (unless given).

    Only a MySQL URL is parsed: another one (SQLite's) does not import SQLAlchemy here."""
    if not url.lower().startswith("mysql"):
        return url
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # not a URL SQLAlchemy understands: let the connection attempt report it
        return url
    if parsed.get_backend_name() != "mysql" or parsed.get_driver_name() not in ("pymysql", "mysqldb"):
        return url
    missing = {k: v for k, v in _MYSQL_TIMEOUTS.items() if k not in parsed.query}
    if not missing:
        return url
    return parsed.update_query_dict(missing).render_as_string(hide_password=False)


class DatabaseLink:
    """The usage database at `url` (a SQLAlchemy URL).

    Args:
        url: the database; a SQLite file's folder is created when first needed.
        spool_path: where rows wait while it is down (None: in memory), for the warning.
        hint: what the user can do, added to the warning logged when the database is unreachable.
    """

    def __init__(self, url: str, *, spool_path: Path | None = None, hint: str | None = None) -> None:
        self.url = url
        self.shown_url = redact_url(url)
        self.connect_url = with_timeouts(url)
        self.hint = hint
        self.db: Any = None
        """keycycle's `UsageDatabase`, once connected."""
        self.connecting = threading.Lock()
        """Held while a connection attempt is under way."""
        self.last_error: str | None = None
        self.down = False
        """Whether the last attempt failed (said once, until one works)."""
        self._spool_path = spool_path

    def connect(self) -> bool:
        """Connect unless connected; False (the error noted) if the database cannot be reached."""
        with self.connecting:
            if self.db is not None:
                return True
            from hfs_core._keycycle import UsageDatabase as database
            try:
                path = sqlite_path(self.url)
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                db = database(self.connect_url)
                if db.engine.dialect.name == "sqlite":
                    _use_wal(db.engine)
            except Exception as exc:
                self.note_error(exc)
                return False
            self.db = db
            if self.down:
                log.info("usage database %s is reachable again", self.shown_url)
            self.down = False
            return True

    def note_error(self, exc: BaseException) -> None:
        """Keep `exc` as the last error; warn if the database was up until now."""
        self.last_error = describe_error(exc, self.connect_url)
        if not self.down:
            self.down = True
            where = f"in the spool {self._spool_path}" if self._spool_path is not None else "in memory"
            log.warning("usage database %s is unreachable (%s); calls go on, rows wait %s and are written "
                        "when it returns%s", self.shown_url, self.last_error, where,
                        f"; {self.hint}" if self.hint else "")

    def came_back(self) -> None:
        """A write worked: if the database was down, it is up again (said once)."""
        if self.down:
            self.down = False
            log.info("usage database %s is reachable again; writing waiting rows", self.shown_url)

    @property
    def connected(self) -> bool:
        """Whether the last attempt to reach the database worked."""
        return self.db is not None and not self.down

    def engine(self) -> Any:
        """The database's engine, connecting if need be (None while it is unreachable)."""
        return self.db.engine if self.connect() else None

    def write(self, batch: Sequence[Row]) -> Written | None:
        """Write `batch`, fitted to the table, in one transaction; None (the error noted) if the
        database cannot be reached. When it refuses the batch for its data, the rows are written
        one at a time: `Written` says which it refused, and where it stopped answering if it did."""
        if not self.connect():
            return None
        rows = [self._fit(row) for row in batch]
        try:
            self._insert(rows)
        except Exception as exc:
            if not _refuses_data(exc):
                self.note_error(exc)
                return None
        else:
            return Written()
        refused: dict[int, str] = {}
        for index, row in enumerate(rows):
            try:
                self._insert([row])
            except Exception as exc:
                if not _refuses_data(exc):
                    self.note_error(exc)
                    return Written(refused, stopped_at=index)
                refused[index] = describe_error(exc, self.connect_url)
                log.error("usage database %s refused a row (%s); it is set aside in the spool's rejected_rows "
                          "table", self.shown_url, refused[index])
        return Written(refused)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(self.db.usage_logs.insert(), rows)

    def _fit(self, row: Row) -> dict[str, Any]:
        """`row` as the table takes it: text cut to its column's length (marked), tokens held to 32 bits."""
        values = dict(zip(_COLUMNS, row, strict=True))
        for name in ("provider", "model", "api_key_suffix"):
            length = getattr(self.db.usage_logs.c[name].type, "length", None)
            text = str(values[name])
            if length and len(text) > length:
                digest = hashlib.sha256(text.encode()).hexdigest()[:6]
                text = text[:length - len(CUT_MARK) - len(digest)] + CUT_MARK + digest
            values[name] = text
        values["tokens"] = min(max(row[4], 0), _MAX_TOKENS)
        return values

    def history(self, provider: str, seconds: float,
                wait: float | None = None) -> Sequence[tuple[str, str, float, int]]:
        """Rows (suffix, model, timestamp, tokens) of the last `seconds` for `provider`.

        The caller is building a pool (inside a `get_model`), so it waits at most `wait`
        seconds (default `HISTORY_WAIT`): a database that refuses, or hangs without answering, gives [] and the pool
        starts with empty windows (said in a warning); the writer keeps trying in the background.
        """
        def load() -> list[tuple[str, str, float, int]]:
            early = self.read_unconnected(
                "usage_logs", "SELECT api_key_suffix, model, timestamp, tokens FROM usage_logs "
                "WHERE provider = ? AND timestamp > ?", (provider, time.time() - seconds))
            if early is not None:
                return [(r[0], r[1], r[2], r[3]) for r in early]
            if not self.connect():
                return []
            try:
                return [(r[0], r[1], r[2], r[3]) for r in self.db.load_provider_history(provider, seconds)]
            except Exception as exc:
                self.note_error(exc)
                return []

        wait = HISTORY_WAIT if wait is None else wait
        try:
            return call_with_deadline(load, wait, name="hfs-usage-history")
        except DeadlineExceeded:
            log.warning("usage database %s did not answer within %gs: %s starts with empty rate windows "
                        "(its last 24 h of usage is not replayed)", self.shown_url, wait, provider)
            return []

    def read_unconnected(self, table: str, query: str,
                         params: Sequence[Any]) -> list[tuple[Any, ...]] | None:
        """Rows of `query` (on `table`) read from a SQLite file with the standard library while nothing
        has connected yet, or None (another database, or connected: use the engine).

        A pool's first call then does not wait for SQLAlchemy's import, which the writer pays in the
        background when it first writes. The file's folder is created (as `connect` would); no file,
        or no `table` in it yet: no rows. A failure is noted (the store's warning) and gives no rows.
        """
        path = sqlite_path(self.url)
        if path is None or self.db is not None:
            return None
        import sqlite3

        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # as `connect` would: an unusable folder is said now
            if not path.exists():
                return []
            conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=HISTORY_WAIT)
            try:
                found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
                return [] if found.fetchone() is None else [tuple(row) for row in conn.execute(query, params)]
            finally:
                conn.close()
        except (OSError, sqlite3.Error) as exc:
            self.note_error(exc)
            return []

    def dispose(self) -> None:
        """Close the engine's connections, unless a connection attempt still hangs on a silent
        database (its thread is a daemon: leave it be rather than wait for it)."""
        if self.connecting.acquire(timeout=0.1):
            try:
                if self.db is not None:
                    self.db.engine.dispose()
            finally:
                self.connecting.release()


def _refuses_data(exc: BaseException) -> bool:
    """Whether `exc` is the database refusing the values written (not failing to answer)."""
    from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

    if isinstance(exc, DataError | IntegrityError):
        return True
    args: tuple[Any, ...] = getattr(exc.orig, "args", ()) if isinstance(exc, DBAPIError) else ()
    return bool(args) and args[0] in _REFUSAL_CODES


def _use_wal(engine: Any) -> None:
    """Open `engine`'s SQLite connections in WAL mode with ``synchronous=NORMAL``.

    A commit then appends to the write-ahead log without waiting for the disk (a power cut
    may lose the last commits, never corrupt the file), and readers such as ``hfs usage`` do
    not block the writer. The connections keycycle's table setup opened are dropped, so every
    connection from here on is opened with the pragmas.
    """
    from sqlalchemy import event

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()
