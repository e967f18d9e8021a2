"""The usage database: one row per successful call, in keycycle's ``usage_logs`` table.

Rows are written by one background thread in batches, each batch one ``executemany`` in one
transaction (SQLite in WAL mode with ``synchronous=NORMAL``: a commit does not wait for the disk).
`UsageStore.record` runs on the caller's thread after every successful call, so it does the least
it can: one tuple appended under the lock, the writer woken only when it may be waiting for it.
When the database is down, the rows that fail to be written go to the store's `Spool` (a local
SQLite file) and are written when it returns, by this process or the next one; without a
usable spool they wait in memory (up to `max_pending`). A database that has just failed is
tried again every `retry_seconds`; in between, new rows go straight to the spool. Rows that
cannot be kept are counted as lost and reported, never dropped silently. Every store is closed
at exit and on SIGTERM (`hfs_core.usage.exits`). Rows hold the key's last 8 characters
(keycycle's convention), never the key.

Accounting: every recorded row ends up in exactly one of ``written``, ``pending`` (in memory or
in the spool) or ``lost`` (`UsageHealth`), so ``written + pending + lost`` is the number of rows
recorded. Rows an earlier process spooled and this one wrote are counted apart, as ``replayed``.
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
from hfs_core.usage import exits
from hfs_core.usage.cooldowns import Cooldowns
from hfs_core.usage.queries import sqlite_path
from hfs_core.usage.redact import describe_error, redact_url
from hfs_core.usage.spool import Row, Spool

log = logging.getLogger("hfs_core.usage")

_COLUMNS = ("provider", "model", "api_key_suffix", "timestamp", "tokens")
_BATCH = 200
_REPLAY_BATCH = 500
"""Spooled rows written per transaction when the database is back."""
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
    """Rows waiting for the database, in memory or in the spool."""
    lost: int
    last_error: str | None
    spooled: int = 0
    """Of the pending rows, those kept in the spool file (they survive a crash)."""
    replayed: int = 0
    """Rows earlier processes spooled, written by this one."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return dict(self.__dict__)


class _DatabaseDown(Exception):
    """A replayed batch could not be written (the error is already noted)."""


class UsageStore:
    """Writes usage rows to a SQLAlchemy database in the background, losing none silently.

    Args:
        url: the database (SQLAlchemy URL); a SQLite file's folder is created when first needed.
        max_pending: rows kept in memory at most while they can be neither written nor spooled.
        retry_seconds: pause between attempts on a database that failed.
        spool: where rows wait while the database is down (None: in memory only).
        hint: what the user can do, added to the warning logged when the database is unreachable.
    """

    def __init__(self, url: str, *, max_pending: int = 100_000, retry_seconds: float = 2.0,
                 spool: Spool | None = None, hint: str | None = None) -> None:
        self.url = url
        self.shown_url = redact_url(url)
        self.max_pending = max_pending
        self.retry_seconds = retry_seconds
        self.spool = spool
        self.hint = hint
        self._connect_url = _with_timeouts(url)
        self._db: Any = None
        self._connect_lock = threading.Lock()
        self._rows: deque[Row] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._closing = False
        self._closed = False
        self._last_try = False  # the writer's one attempt on the rows left at shutdown is made
        self._retry_now = False
        self._retry_at = 0.0  # while down: when new rows may try the database again
        self._replay_at = 0.0  # when the spool's backlog may be tried again
        self._attempts = 0  # database writes attempted, for flush() to see one made after it asked
        self._writing = 0  # rows of the batch being written (counted in `_rows` until written)
        self._written = 0
        self._lost = 0
        self._spooled = 0  # this store's rows in the spool
        self._replayed = 0
        self._backlog = False  # the spool may hold rows for this database
        self._looked = False  # the writer has looked for rows an earlier process spooled
        self._spool_ok = spool is not None  # rows may go straight to the spool while the database is down
        self._spool_warned = False
        self._last_error: str | None = None
        self._down = False
        exits.track(self)
        self.cooldowns = Cooldowns(self._engine, self._connect_lock, self._note_error)
        """Keys kept out until a reset, remembered in the same database."""
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
                path = sqlite_path(self.url)
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
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
            where = f"in the spool {self.spool.path}" if self.spool is not None else "in memory"
            log.warning("usage database %s is unreachable (%s); calls go on, rows wait %s and are written "
                        "when it returns%s", self.shown_url, self._last_error, where,
                        f"; {self.hint}" if self.hint else "")

    @property
    def connected(self) -> bool:
        """Whether the last attempt to reach the database worked."""
        return self._db is not None and not self._down

    def health(self) -> UsageHealth:
        """Counts of rows written, waiting and lost."""
        with self._cond:
            return UsageHealth(self.shown_url, self.connected, self._written, len(self._rows) + self._spooled,
                               self._lost, self._last_error, self._spooled, self._replayed)

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

    def remember_cooldown(self, provider: str, suffix: str, until: float) -> None:
        """Remember, across restarts, that the key ending in `suffix` is out until `until` (in the background)."""
        self.cooldowns.remember(provider, suffix, until)

    def _engine(self) -> Any:
        """The database's engine, connecting if need be (None while it is unreachable)."""
        return self._db.engine if self._connect() else None

    # -- the writer thread ---------------------------------------------------------------------

    def _take(self) -> list[Row] | None:
        """The next batch (empty when only the spool's backlog is due), or None when the writer should stop."""
        with self._cond:
            while True:
                now = time.monotonic()
                due = not self._down or now >= self._retry_at
                if self._rows and not self._last_try and (due or self._spool_ok or self._stopping):
                    if self._stopping:
                        self._last_try = True
                    break
                if self._stopping:
                    return None
                if self._backlog and now >= self._replay_at:
                    break
                waits = ([self._retry_at - now] if self._rows and not due else []) + \
                        ([self._replay_at - now] if self._backlog else [])
                self._cond.wait(min(waits) if waits else None)
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

    def _try_write(self, batch: list[Row]) -> bool:
        """Write `batch` in one transaction; False (the error noted, the next try scheduled) if it failed."""
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
            self._attempts += 1
            if not ok:
                self._retry_at = self._replay_at = time.monotonic() + self.retry_seconds
            self._cond.notify_all()
        if ok and self._down:
            self._down = False
            log.info("usage database %s is reachable again; writing waiting rows", self.shown_url)
        return ok

    def _try_spool(self, rows: list[Row]) -> bool:
        """Keep `rows` in the spool; False (said once per failure streak) if there is none or it failed."""
        if self.spool is None:
            return False
        try:
            self.spool.add(rows)
        except Exception as exc:
            self._spool_ok = False
            if not self._spool_warned:
                self._spool_warned = True
                log.warning("usage spool %s cannot be written (%s); rows waiting for %s are kept in memory only",
                            self.spool.path, describe_error(exc, self._connect_url), self.shown_url)
            return False
        self._spool_ok = True
        self._spool_warned = False
        return True

    def _settle(self, count: int, outcome: str | None) -> None:
        """The batch being written was ``"written"``, ``"spooled"``, or (None) is still queued."""
        with self._cond:
            self._writing = 0
            if outcome is not None:
                # Rows stay queued until settled, so close() may have counted this batch as
                # lost while it was still being written: move what it took back.
                queued = min(count, len(self._rows))
                for _ in range(queued):
                    self._rows.popleft()
                self._lost -= count - queued
                if outcome == "written":
                    self._written += count
                else:
                    self._spooled += count
                    self._backlog = True
            self._cond.notify_all()

    def _handle(self, batch: list[Row]) -> bool:
        """Write `batch`, or spool it if the database is down; True if it was written."""
        recently_failed = self._down and time.monotonic() < self._retry_at
        written = not (recently_failed and self._spool_ok) and self._try_write(batch)
        spooled = not written and self._try_spool(batch)
        self._settle(len(batch), "written" if written else "spooled" if spooled else None)
        return written

    def _replay(self) -> None:
        """Write one batch of the spool's backlog (rows that waited for the database)."""
        assert self.spool is not None

        def write(rows: list[Row]) -> None:
            if not self._try_write(rows):
                raise _DatabaseDown

        try:
            done = self.spool.replay(write, _REPLAY_BATCH)
        except _DatabaseDown:
            return
        except Exception as exc:  # the spool file itself failed: its rows stay there
            with self._cond:
                self._replay_at = time.monotonic() + self.retry_seconds
            log.warning("usage spool %s cannot be read (%s); its rows stay there", self.spool.path,
                        describe_error(exc, self._connect_url))
            return
        with self._cond:
            if done is None:  # another process is replaying this database's backlog
                self._replay_at = time.monotonic() + self.retry_seconds
                return
            own, others = done
            if own == others == 0:
                self._backlog = False
            self._spooled -= own
            self._written += own
            self._replayed += others
            self._cond.notify_all()
        if others:
            log.info("usage database %s: %d rows spooled by an earlier process written", self.shown_url, others)

    def _look_for_backlog(self) -> None:
        """Note rows an earlier process left in the spool for this database (they are written first)."""
        waiting = 0
        if self.spool is not None:
            try:
                waiting = self.spool.count()
            except Exception as exc:  # an unusable data folder: said when a row needs the spool
                log.debug("usage spool %s cannot be read: %s", self.spool.path, exc)
            if waiting:
                log.info("usage spool %s: %d rows wait for %s", self.spool.path, waiting, self.shown_url)
        with self._cond:
            self._backlog = waiting > 0
            self._looked = True
            self._cond.notify_all()

    def _run(self) -> None:
        self._look_for_backlog()
        while (batch := self._take()) is not None:
            if batch and not self._handle(batch):
                continue
            if self._backlog and time.monotonic() >= self._replay_at and not self._stopping:
                self._replay()

    # -- flushing and closing --------------------------------------------------------------------

    def _replay_pending(self) -> bool:
        """Whether the spool's backlog is due to be written now (the database answering); `_cond` held."""
        return self._backlog and not self._down and time.monotonic() >= self._replay_at

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued row is written or spooled, and (the database answering) the spool's
        backlog written; False if some rows still wait in memory, or the backlog, after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._retry_now = True  # cut a retry pause short: try the database now
            self._retry_at = self._replay_at = 0.0
            self._cond.notify_all()
            while self._rows or not self._looked or self._replay_pending():
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def close(self, timeout: float = 5.0) -> UsageHealth:
        """Write (or spool) what can be within `timeout`, count the rest as lost, and stop. Safe to call twice."""
        with self._cond:
            if self._closing:
                return self.health()
            self._closing = True
        self.flush(timeout)
        self.cooldowns.close(timeout)
        with self._cond:
            self._stopping = True
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=max(0.5, min(timeout, 5.0)))
        with self._cond:
            # A writer still hanging on the database keeps its batch (counted lost unless it lands);
            # the rows behind it are spooled from here.
            writing = self._writing if self._thread.is_alive() else 0
            rest = list(islice(self._rows, writing, None))
            self._lost += len(self._rows)
            self._rows.clear()
        if rest and self._try_spool(rest):
            with self._cond:
                self._lost -= len(rest)
                self._spooled += len(rest)
            rest = []
        left = writing + len(rest)
        if left:
            log.error("usage database %s: %d rows could not be written before shutdown and are lost (%s)",
                      self.shown_url, left, self._last_error or "database unreachable")
        if self._spooled:
            log.warning("usage database %s is unreachable at shutdown (%s): %d rows wait in the spool %s and are "
                        "written by the next process that reaches it", self.shown_url,
                        self._last_error or "database unreachable", self._spooled, getattr(self.spool, "path", ""))
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
