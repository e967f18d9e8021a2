"""The usage store's rows in its spool: `Backlog`.

Rows whose write failed are kept in the spool (`spool`); the rows waiting there, this
process's and those an earlier one left, are found at start and replayed a batch at a time once
the database answers. Rows the database refuses are set aside in the spool's dead-letter table.
A spool that cannot be written is said once per failure streak, and its rows wait in memory
meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hfs_core.usage.redact import describe_error
from hfs_core.usage.spool import Replayed, Row, Spool, Written

log = logging.getLogger("hfs_core.usage")

_REPLAY_BATCH = 500
"""Spooled rows written per transaction when the database is back."""


class _DatabaseDown(Exception):
    """A replayed batch could not be written (the error is already noted)."""


class Backlog:
    """The rows a usage store keeps in `spool` (None: there is none) for the database at `shown_url`.

    `connect_url` is the URL connections are made with, hidden from the errors it may appear in.
    """

    def __init__(self, spool: Spool | None, *, shown_url: str, connect_url: str) -> None:
        self.spool = spool
        self.usable = spool is not None
        """Whether rows may go straight to the spool while the database is down."""
        self._shown_url = shown_url
        self._connect_url = connect_url
        self._warned = False

    def keep(self, rows: list[Row]) -> bool:
        """Keep `rows` in the spool; False (said once per failure streak) if there is none or it failed."""
        if self.spool is None:
            return False
        try:
            self.spool.add(rows)
        except Exception as exc:
            self.usable = False
            if not self._warned:
                self._warned = True
                log.warning("usage spool %s cannot be written (%s); rows waiting for %s are kept in memory only",
                            self.spool.path, describe_error(exc, self._connect_url), self._shown_url)
            return False
        self.usable = True
        self._warned = False
        return True

    def reject(self, rows: list[tuple[Row, str]]) -> bool:
        """Set (row, reason) pairs aside in the spool's dead-letter table; False if there is none or it failed."""
        if self.spool is None:
            return False
        try:
            self.spool.reject(rows)
        except Exception as exc:
            log.error("usage spool %s cannot be written (%s): %d rows the database refused are lost",
                      self.spool.path, describe_error(exc, self._connect_url), len(rows))
            return False
        return True

    def waiting(self) -> int:
        """How many rows wait in the spool for this database (0 when it cannot be read)."""
        waiting = 0
        if self.spool is not None:
            try:
                waiting = self.spool.count()
            except Exception as exc:  # an unusable data folder: said when a row needs the spool
                log.debug("usage spool %s cannot be read: %s", self.spool.path, exc)
            if waiting:
                log.info("usage spool %s: %d rows wait for %s", self.spool.path, waiting, self._shown_url)
        return waiting

    def replay(self, write: Callable[[list[Row]], Written | None]) -> Replayed | None:
        """Write one batch of the backlog with `write`; None if `write` failed (the rows stay spooled)."""
        assert self.spool is not None

        def write_or_raise(rows: list[Row]) -> Written:
            done = write(rows)
            if done is None:
                raise _DatabaseDown
            return done

        try:
            done = self.spool.replay(write_or_raise, _REPLAY_BATCH)
        except _DatabaseDown:
            return None
        except Exception as exc:  # the spool file itself failed: its rows stay there
            log.warning("usage spool %s cannot be read (%s); its rows stay there", self.spool.path,
                        describe_error(exc, self._connect_url))
            return Replayed(later=True)
        if done is None:  # another process is replaying this database's backlog
            return Replayed(later=True)
        return done
