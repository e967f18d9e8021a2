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
(keycycle's convention), never the key. The database itself is the store's `DatabaseLink`
(`database_link`), and the rows in the spool its `Backlog` (`backlog`).

A row the database refuses (its batch is then written a row at a time) is set aside in the
spool's dead-letter table (`spool`) and never holds up the rows behind it.

Accounting: every recorded row ends up in exactly one of ``written``, ``pending`` (in memory or
in the spool), ``rejected`` (refused by the database) or ``lost`` (`UsageHealth`), so their sum
is the number of rows recorded. Rows an earlier process spooled and this one wrote are counted
apart, as ``replayed``.
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

from hfs_core.usage import exits
from hfs_core.usage.backlog import Backlog
from hfs_core.usage.cooldowns import Cooldowns
from hfs_core.usage.database_link import DatabaseLink
from hfs_core.usage.spool import Row, Spool, Written

log = logging.getLogger("hfs_core.usage")

_BATCH = 200
_LINGER = 0.1
"""Seconds the writer waits for more rows before writing a batch smaller than `_BATCH`."""


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
    rejected: int = 0
    """Rows the database refused (or, spooled by this process, that could not be read back): set
    aside in the spool's dead-letter table when there is one, else logged and dropped."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return dict(self.__dict__)


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
        self.max_pending = max_pending
        self.retry_seconds = retry_seconds
        self.spool = spool
        self.hint = hint
        self._database = DatabaseLink(url, spool_path=None if spool is None else spool.path, hint=hint)
        self.shown_url = self._database.shown_url
        self._backlog = Backlog(spool, shown_url=self.shown_url, connect_url=self._database.connect_url)
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
        self._rejected = 0
        self._backlog_waits = False  # the spool may hold rows for this database
        self._looked = False  # the writer has looked for rows an earlier process spooled
        exits.track(self)
        self.cooldowns = Cooldowns(self._database.engine, self._database.connecting, self._database.note_error,
                                   self._database.read_unconnected)
        """Keys kept out until a reset, remembered in the same database."""
        self._thread = threading.Thread(target=self._run, name="hfs-usage-writer", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"UsageStore(url={self.shown_url!r})"

    @property
    def connected(self) -> bool:
        """Whether the last attempt to reach the database worked."""
        return self._database.connected

    def health(self) -> UsageHealth:
        """Counts of rows written, waiting and lost."""
        with self._cond:
            return UsageHealth(self.shown_url, self.connected, self._written, len(self._rows) + self._spooled,
                               self._lost, self._database.last_error, self._spooled, self._replayed,
                               self._rejected)

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
        """Rows (suffix, model, timestamp, tokens) of the last `seconds` for `provider`, waiting
        at most `wait` seconds (see `DatabaseLink.history`)."""
        return self._database.history(provider, seconds, wait)

    def remember_cooldown(self, provider: str, suffix: str, until: float) -> None:
        """Remember, across restarts, that the key ending in `suffix` is out until `until` (in the background)."""
        self.cooldowns.remember(provider, suffix, until)

    # -- the writer thread ---------------------------------------------------------------------

    def _take(self) -> list[Row] | None:
        """The next batch (empty when only the spool's backlog is due), or None when the writer should stop."""
        with self._cond:
            while True:
                now = time.monotonic()
                due = not self._database.down or now >= self._retry_at
                if self._rows and not self._last_try and (due or self._backlog.usable or self._stopping):
                    if self._stopping:
                        self._last_try = True
                    break
                if self._stopping:
                    return None
                if self._backlog_waits and now >= self._replay_at:
                    break
                waits = ([self._retry_at - now] if self._rows and not due else []) + \
                        ([self._replay_at - now] if self._backlog_waits else [])
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

    def _try_write(self, batch: list[Row]) -> Written | None:
        """Write `batch` (see `DatabaseLink.write`); None (the error noted, the next try scheduled)
        if the database could not be reached; the next try is scheduled too when it stopped part-way."""
        done = self._database.write(batch)
        with self._cond:
            self._attempts += 1
            if done is None or done.stopped_at is not None:
                self._retry_at = self._replay_at = time.monotonic() + self.retry_seconds
            self._cond.notify_all()
        if done is not None and done.stopped_at is None:
            self._database.came_back()
        return done

    def _settle(self, count: int, written: int = 0, spooled: int = 0, rejected: int = 0) -> None:
        """The batch being written (`count` rows) is settled: `written`, `spooled` or `rejected`
        (none of them: it is still queued)."""
        with self._cond:
            self._writing = 0
            if written + spooled + rejected:
                # Rows stay queued until settled, so close() may have counted this batch as
                # lost while it was still being written: move what it took back.
                queued = min(count, len(self._rows))
                for _ in range(queued):
                    self._rows.popleft()
                self._lost -= count - queued
                self._written += written
                self._spooled += spooled
                self._rejected += rejected
                self._lost += count - written - spooled - rejected
                if spooled:
                    self._backlog_waits = True
            self._cond.notify_all()

    def _handle(self, batch: list[Row]) -> bool:
        """Write `batch`, or spool it if the database is down; True if it was all written or set aside."""
        recently_failed = self._database.down and time.monotonic() < self._retry_at
        done = None if recently_failed and self._backlog.usable else self._try_write(batch)
        if done is None:
            self._settle(len(batch), spooled=len(batch) if self._backlog.keep(batch) else 0)
            return False
        refused = [(batch[i], reason) for i, reason in done.refused.items()]
        set_aside = len(refused) if refused and self._backlog.reject(refused) else 0
        left = [batch[i] for i in done.unwritten(len(batch))]
        spooled = len(left) if left and self._backlog.keep(left) else 0
        if len(refused) - set_aside + len(left) - spooled:
            log.error("usage database %s: %d rows are lost (refused, or left when it stopped answering, "
                      "with no spool to keep them)", self.shown_url, len(refused) - set_aside + len(left) - spooled)
        self._settle(len(batch), written=len(batch) - len(refused) - len(left), spooled=spooled, rejected=set_aside)
        return not left

    def _replay(self) -> None:
        """Write one batch of the spool's backlog (rows that waited for the database)."""
        done = self._backlog.replay(self._try_write)
        if done is None:  # the database is down: `_try_write` set the next try
            return
        with self._cond:
            if done.later:
                self._replay_at = time.monotonic() + self.retry_seconds
                return
            if done.empty:
                self._backlog_waits = False
            self._spooled -= done.own + done.own_rejected
            self._written += done.own
            self._rejected += done.own_rejected
            self._replayed += done.others
            self._cond.notify_all()
        if done.others_rejected:
            log.error("usage spool %s: %d rows an earlier process spooled are set aside in its rejected_rows "
                      "table", getattr(self.spool, "path", ""), done.others_rejected)
        if done.others:
            log.info("usage database %s: %d rows spooled by an earlier process written", self.shown_url, done.others)

    def _look_for_backlog(self) -> None:
        """Note rows an earlier process left in the spool for this database (they are written first)."""
        waiting = self._backlog.waiting()
        with self._cond:
            self._backlog_waits = waiting > 0
            self._looked = True
            self._cond.notify_all()

    def _run(self) -> None:
        self._look_for_backlog()
        while (batch := self._take()) is not None:
            if batch and not self._handle(batch):
                continue
            if self._backlog_waits and time.monotonic() >= self._replay_at and not self._stopping:
                self._replay()

    # -- flushing and closing --------------------------------------------------------------------

    def _replay_pending(self) -> bool:
        """Whether the spool's backlog is due to be written now (the database answering); `_cond` held."""
        return self._backlog_waits and not self._database.down and time.monotonic() >= self._replay_at

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
        if rest and self._backlog.keep(rest):
            with self._cond:
                self._lost -= len(rest)
                self._spooled += len(rest)
            rest = []
        left = writing + len(rest)
        if left:
            log.error("usage database %s: %d rows could not be written before shutdown and are lost (%s)",
                      self.shown_url, left, self._database.last_error or "database unreachable")
        if self._spooled:
            log.warning("usage database %s is unreachable at shutdown (%s): %d rows wait in the spool %s and are "
                        "written by the next process that reaches it", self.shown_url,
                        self._database.last_error or "database unreachable", self._spooled,
                        getattr(self.spool, "path", ""))
        if not self._thread.is_alive():
            self._database.dispose()
        return self.health()

