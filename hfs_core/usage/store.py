"""The usage database: one row per successful call, in keycycle's ``usage_logs`` table.

Rows are written by one background thread in batches, each batch one ``executemany`` in one
transaction (SQLite in WAL mode with ``synchronous=NORMAL``: a commit does not wait for the disk).
`UsageStore.record` runs on the caller's thread after every successful call, so it does the least
it can: one tuple appended under the lock, the writer woken only when it may be waiting for it.
When the database is down the rows wait in memory (up to `max_pending`) and are written when
it returns; rows that cannot be kept are counted as lost and reported, never dropped silently.
Rows hold the key's last 8 characters (keycycle's convention), never the key.

Accounting: every recorded row ends up in exactly one of ``written``, ``pending`` or
``lost`` (`UsageHealth`), so ``written + pending + lost`` is the number of rows recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from hfs_core.deadline import DeadlineExceeded, call_with_deadline
from hfs_core.usage.redact import describe_error, redact_url

log = logging.getLogger("hfs_core.usage")

Row = tuple[str, str, str, float, int]
"""A queued usage row: provider, model, key suffix, timestamp, tokens (in `_COLUMNS` order)."""
_COLUMNS = ("provider", "model", "api_key_suffix", "timestamp", "tokens")
_BATCH = 200
_LINGER = 0.1
"""Seconds the writer waits for more rows before writing a batch smaller than `_BATCH`."""
HISTORY_WAIT = 3.0
"""Seconds a pool being built waits for its usage history before starting with empty windows."""
_MYSQL_TIMEOUTS = {"connect_timeout": "5", "read_timeout": "15", "write_timeout": "15"}
"""Seconds a MySQL/TiDB connection may take to open, read or write before it counts as down.

Without them a database that stops answering (rather than refusing) would hold the writer,
and the history load of a pool being built, for as long as the TCP stack lets it."""


def _with_timeouts(url: str) -> str:
    """`url`, with connect/read/write timeouts added for pymysql and mysqlclient (unless given)."""
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


@dataclass(frozen=True)
class UsageHealth:
    """What the usage store has done so far."""

    url: str
    connected: bool
    written: int
    pending: int
    lost: int
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return dict(self.__dict__)


class UsageStore:
    """Writes usage rows to a SQLAlchemy database in the background, losing none silently."""

    def __init__(self, url: str, *, max_pending: int = 100_000, retry_seconds: float = 2.0) -> None:
        self.url = url
        self.shown_url = redact_url(url)
        self.max_pending = max_pending
        self.retry_seconds = retry_seconds
        self._connect_url = _with_timeouts(url)
        self._db: Any = None
        self._connect_lock = threading.Lock()
        self._rows: deque[Row] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._closed = False
        self._retry_now = False
        self._writing = 0  # rows of the batch being written (counted in `_rows` until written)
        self._written = 0
        self._lost = 0
        self._last_error: str | None = None
        self._down = False
        self._thread = threading.Thread(target=self._run, name="hfs-usage-writer", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"UsageStore(url={self.shown_url!r})"

    def _connect(self) -> bool:
        with self._connect_lock:
            if self._db is not None:
                return True
            from hfs_core._keycycle import UsageDatabase as database
            try:
                db = database(self._connect_url)
                if db.engine.dialect.name == "sqlite":
                    _use_wal(db.engine)
            except Exception as exc:
                self._note_error(exc)
                return False
            self._db = db
            if self._down:
                log.info("usage database %s is reachable again", self.shown_url)
            self._down = False
            return True

    def _note_error(self, exc: BaseException) -> None:
        self._last_error = describe_error(exc, self._connect_url)
        if not self._down:
            self._down = True
            log.warning("usage database %s is unreachable (%s); calls go on, rows wait in memory "
                        "and are written when it returns", self.shown_url, self._last_error)

    @property
    def connected(self) -> bool:
        """Whether the last attempt to reach the database worked."""
        return self._db is not None and not self._down

    def health(self) -> UsageHealth:
        """Counts of rows written, waiting and lost."""
        with self._cond:
            return UsageHealth(self.shown_url, self.connected, self._written, len(self._rows), self._lost,
                               self._last_error)

    def record(self, provider: str, model: str, suffix: str, tokens: int) -> None:
        """Queue one usage row (never blocks on the database)."""
        row = (provider, model, suffix, time.time(), int(tokens))
        with self._cond:
            queued = len(self._rows)
            if self._closed or queued >= self.max_pending:
                self._lose_one()
                return
            self._rows.append(row)
            # The writer waits for a first row, or lingers until a batch is full: wake it then only.
            if queued == 0 or queued + 1 == _BATCH:
                self._cond.notify_all()

    def _lose_one(self) -> None:
        """Count (and log) a row that cannot be kept; called with `_cond` held."""
        self._lost += 1
        if self._closed:
            log.error("usage database %s: a row recorded after shutdown is lost (%d lost in all)",
                      self.shown_url, self._lost)
        elif self._lost == 1 or self._lost % 1000 == 0:
            log.error("usage database %s: %d rows lost so far (%d already waiting)",
                      self.shown_url, self._lost, self.max_pending)

    def history(self, provider: str, seconds: float,
                wait: float | None = None) -> Sequence[tuple[str, str, float, int]]:
        """Rows (suffix, model, timestamp, tokens) of the last `seconds` for `provider`.

        The caller is building a pool (inside a `get_model`), so it waits at most `wait`
        seconds (default `HISTORY_WAIT`): a database that refuses, or hangs without answering, gives [] and the pool
        starts with empty windows (said in a warning); the writer keeps trying in the background.
        """
        def load() -> list[tuple[str, str, float, int]]:
            if not self._connect():
                return []
            try:
                return [(r[0], r[1], r[2], r[3]) for r in self._db.load_provider_history(provider, seconds)]
            except Exception as exc:
                self._note_error(exc)
                return []

        wait = HISTORY_WAIT if wait is None else wait
        try:
            return call_with_deadline(load, wait, name="hfs-usage-history")
        except DeadlineExceeded:
            log.warning("usage database %s did not answer within %gs: %s starts with empty rate windows "
                        "(its last 24 h of usage is not replayed)", self.shown_url, wait, provider)
            return []

    def _take(self) -> list[Row]:
        with self._cond:
            while not self._rows and not self._stopping:
                self._cond.wait()
            # Let a few more rows join, so a busy process writes one transaction per batch rather
            # than per call; a flush (or shutdown) cuts the wait short.
            linger_end = time.monotonic() + _LINGER
            while 0 < len(self._rows) < _BATCH and not self._stopping and not self._retry_now:
                left = linger_end - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = list(islice(self._rows, _BATCH))
            self._writing = len(batch)
            self._retry_now = False  # this attempt answers any earlier request to try now
            return batch

    def _write(self, batch: list[Row]) -> bool:
        ok = self._connect()
        if ok:
            try:
                rows = [dict(zip(_COLUMNS, row, strict=True)) for row in batch]
                with self._db.engine.begin() as conn:
                    conn.execute(self._db.usage_logs.insert(), rows)
            except Exception as exc:
                self._note_error(exc)
                ok = False
        with self._cond:
            self._writing = 0
            if ok:
                # Rows stay queued until written, so close() may have counted this batch as
                # lost while it was still being written: move what it took back to written.
                queued = min(len(batch), len(self._rows))
                for _ in range(queued):
                    self._rows.popleft()
                self._lost -= len(batch) - queued
                self._written += len(batch)
            self._cond.notify_all()
        if ok and self._down:
            self._down = False
            log.info("usage database %s is reachable again; writing waiting rows", self.shown_url)
        return ok

    def _run(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            if not self._write(batch):
                deadline = time.monotonic() + self.retry_seconds
                with self._cond:
                    # New rows do not cut the pause short (that would hammer a database that is
                    # down); flush() and close() do.
                    while not (self._stopping or self._retry_now) and time.monotonic() < deadline:
                        self._cond.wait(deadline - time.monotonic())
                    self._retry_now = False
                    if self._stopping:
                        return

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued row is written; False if some still wait after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._retry_now = True  # cut a retry pause short: try the database now
            self._cond.notify_all()
            while self._rows:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def close(self, timeout: float = 5.0) -> UsageHealth:
        """Write what can be written within `timeout`, count the rest as lost, and stop. Safe to call twice."""
        with self._cond:
            if self._closed:
                return self.health()
        self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=max(0.5, min(timeout, 5.0)))
        with self._cond:
            left = len(self._rows)
            if left:
                self._lost += left
                self._rows.clear()
        if left:
            log.error("usage database %s: %d rows could not be written before shutdown and are lost (%s)",
                      self.shown_url, left, self._last_error or "database unreachable")
        # A connection attempt still hanging on a silent database holds the lock: leave it be
        # (its thread is a daemon) rather than wait for it.
        if self._connect_lock.acquire(timeout=0.1):
            try:
                if self._db is not None and not self._thread.is_alive():
                    self._db.engine.dispose()
            finally:
                self._connect_lock.release()
        return self.health()


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
