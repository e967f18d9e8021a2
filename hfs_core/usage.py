"""The usage database: one row per successful call, in keycycle's ``usage_logs`` table.

Rows are written by one background thread in batches. When the database is down the
rows wait in memory (up to `max_pending`) and are written when it returns; rows that
cannot be kept are counted as lost and reported, never dropped silently. Rows hold the
key's last 8 characters (keycycle's convention), never the key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hfs_core.env import redact_url

log = logging.getLogger("hfs_core.usage")

_BATCH = 200


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
        self._db: Any = None
        self._rows: deque[dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._written = 0
        self._lost = 0
        self._last_error: str | None = None
        self._down = False
        self._connect()
        self._thread = threading.Thread(target=self._run, name="hfs-usage-writer", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"UsageStore(url={self.shown_url!r})"

    def _connect(self) -> bool:
        if self._db is not None:
            return True
        from hfs_core.pool import keycycle_module

        database = keycycle_module().usage.UsageDatabase
        try:
            self._db = database(self.url)
        except Exception as exc:
            self._note_error(exc)
            return False
        if self._down:
            log.info("usage database %s is reachable again", self.shown_url)
        self._down = False
        return True

    def _note_error(self, exc: BaseException) -> None:
        self._last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        self._last_error = self._last_error.replace(self.url, self.shown_url)
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
        row = {"provider": provider, "model": model, "api_key_suffix": suffix, "timestamp": time.time(),
               "tokens": int(tokens)}
        with self._cond:
            if len(self._rows) >= self.max_pending:
                self._lost += 1
                if self._lost == 1 or self._lost % 1000 == 0:
                    log.error("usage database %s: %d rows lost so far (%d already waiting)",
                              self.shown_url, self._lost, self.max_pending)
                return
            self._rows.append(row)
            self._cond.notify()

    def history(self, provider: str, seconds: float) -> Sequence[tuple[str, str, float, int]]:
        """Rows (suffix, model, timestamp, tokens) of the last `seconds` for `provider`; [] if unreachable."""
        if not self._connect():
            return []
        try:
            rows = self._db.load_provider_history(provider, seconds)
        except Exception as exc:
            self._note_error(exc)
            return []
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def _take(self) -> list[dict[str, Any]]:
        with self._cond:
            while not self._rows and not self._stopping:
                self._cond.wait()
            return [self._rows[i] for i in range(min(_BATCH, len(self._rows)))]

    def _write(self, batch: list[dict[str, Any]]) -> bool:
        if not self._connect():
            return False
        try:
            with self._db.engine.begin() as conn:
                conn.execute(self._db.usage_logs.insert(), batch)
        except Exception as exc:
            self._note_error(exc)
            return False
        if self._down:
            self._down = False
            log.info("usage database %s is reachable again; writing waiting rows", self.shown_url)
        with self._cond:
            for _ in batch:
                self._rows.popleft()
            self._written += len(batch)
        return True

    def _run(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            if not self._write(batch):
                with self._cond:
                    if self._stopping:
                        return
                    self._cond.wait(self.retry_seconds)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued row is written; False if some still wait after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                if not self._rows:
                    return True
                self._cond.notify()
            time.sleep(0.01)
        return not self._rows

    def close(self, timeout: float = 5.0) -> UsageHealth:
        """Write what can be written within `timeout`, count the rest as lost, and stop."""
        self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=max(0.5, timeout))
        with self._cond:
            left = len(self._rows)
            if left:
                self._lost += left
                self._rows.clear()
        if left:
            log.error("usage database %s: %d rows could not be written before shutdown and are lost (%s)",
                      self.shown_url, left, self._last_error or "database unreachable")
        if self._db is not None:
            self._db.engine.dispose()
        return self.health()
