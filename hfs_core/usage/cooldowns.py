"""Keys kept out until a reset (a daily quota), remembered in the usage database across restarts.

One small table beside keycycle's ``usage_logs``: ``hfs_key_cooldowns(provider, api_key_suffix,
until)``, a key known by the same 8-character suffix as in the usage rows, never by its value.
A process that restarts reads the rows still in force and keeps those keys out, instead of
meeting the same quota refusal on each of them again. SQLAlchemy is imported on first use.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

from hfs_core.deadline import DeadlineExceeded, call_with_deadline

WAIT = 3.0
"""Seconds a pool being built waits for the cooldowns in force before starting without them."""


@functools.cache
def _table() -> Any:
    from sqlalchemy import Column, Float, MetaData, String, Table

    return Table("hfs_key_cooldowns", MetaData(), Column("provider", String(100), primary_key=True),
                 Column("api_key_suffix", String(50), primary_key=True), Column("until", Float, nullable=False))


class Cooldowns:
    """The cooldown table of one usage database.

    Args:
        engine: the database's engine, or None while it cannot be reached.
        connecting: held while a connection attempt is under way (a hung one makes reads give up at once).
        note_error: where a failure goes (the usage store's warning).
    """

    def __init__(self, engine: Callable[[], Any], connecting: threading.Lock,
                 note_error: Callable[[BaseException], None]) -> None:
        self._engine = engine
        self._connecting = connecting
        self._note_error = note_error
        self._writes: list[threading.Thread] = []

    def remember(self, provider: str, suffix: str, until: float) -> None:
        """Keep the key ending in `suffix` out until `until` (epoch seconds), written in the background."""
        def write() -> None:
            try:
                engine = self._engine()
                if engine is not None:
                    table = _table()
                    table.metadata.create_all(engine, tables=[table])
                    where = (table.c.provider == provider) & (table.c.api_key_suffix == suffix)
                    with engine.begin() as conn:
                        conn.execute(table.delete().where(where))
                        conn.execute(table.insert(), {"provider": provider, "api_key_suffix": suffix, "until": until})
            except Exception as exc:
                self._note_error(exc)

        thread = threading.Thread(target=write, name="hfs-usage-cooldown", daemon=True)
        self._writes = [t for t in self._writes if t.is_alive()] + [thread]
        thread.start()

    def in_force(self, provider: str, wait: float = WAIT) -> list[tuple[str, float]]:
        """(suffix, until) of `provider`'s keys kept out now; [] if the database does not answer in `wait`."""
        if self._connecting.locked():  # a connection attempt hangs (the history load gave up on it)
            return []

        def load() -> list[tuple[str, float]]:
            try:
                engine = self._engine()
                if engine is None:
                    return []
                table = _table()
                table.metadata.create_all(engine, tables=[table])
                query = table.select().where((table.c.provider == provider) & (table.c.until > time.time()))
                with engine.connect() as conn:
                    return [(str(row.api_key_suffix), float(row.until)) for row in conn.execute(query)]
            except Exception as exc:
                self._note_error(exc)
                return []

        try:
            return call_with_deadline(load, wait, name="hfs-usage-cooldowns")
        except DeadlineExceeded:
            return []

    def close(self, timeout: float) -> None:
        """Wait up to `timeout` for the cooldowns being written."""
        deadline = time.monotonic() + timeout
        for thread in self._writes:
            thread.join(max(0.0, deadline - time.monotonic()))
