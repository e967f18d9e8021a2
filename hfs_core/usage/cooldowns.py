"""Keys kept out until a reset (a daily quota), remembered in the usage database across restarts.

One small table beside keycycle's ``usage_logs``: ``hfs_key_cooldowns(provider, api_key_suffix,
until)``, a key known by the same 8-character suffix as in the usage rows, never by its value.
A process that restarts reads the rows still in force and keeps those keys out, instead of
meeting the same quota refusal on each of them again. Each row is checked as it is read: one
whose ``until`` is not a number, or lies further ahead than any daily quota resets
(`LONGEST_WAIT`), is skipped and said, and the others are kept. SQLAlchemy is imported on first use.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from hfs_core.deadline import DeadlineExceeded, call_with_deadline
from hfs_core.plugin import LONGEST_WAIT

log = logging.getLogger("hfs_core.usage")

_TABLE = "hfs_key_cooldowns"
WAIT = 3.0
"""Seconds a pool being built waits for the cooldowns in force before starting without them."""


@functools.cache
def _table() -> Any:
    from sqlalchemy import Column, Float, MetaData, String, Table

    return Table(_TABLE, MetaData(), Column("provider", String(100), primary_key=True),
                 Column("api_key_suffix", String(50), primary_key=True), Column("until", Float, nullable=False))


class Cooldowns:
    """The cooldown table of one usage database.

    Args:
        engine: the database's engine, or None while it cannot be reached.
        connecting: held while a connection attempt is under way (a hung one makes reads give up at once).
        note_error: where a failure goes (the usage store's warning).
        read_unconnected: reads a table without SQLAlchemy before anything has connected, or
            returns None (`DatabaseLink.read_unconnected`).
    """

    def __init__(self, engine: Callable[[], Any], connecting: threading.Lock,
                 note_error: Callable[[BaseException], None],
                 read_unconnected: Callable[[str, str, Sequence[Any]], list[tuple[Any, ...]] | None] | None = None
                 ) -> None:
        self._engine = engine
        self._read_unconnected = read_unconnected
        self._connecting = connecting
        self._note_error = note_error
        self._writes: list[threading.Thread] = []

    def remember(self, provider: str, suffix: str, until: float) -> None:
        """Keep the key ending in `suffix` out until `until` (epoch seconds, at most `LONGEST_WAIT`
        ahead), written in the background."""
        if not math.isfinite(until):
            return
        until = min(until, time.time() + LONGEST_WAIT)

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
        """(suffix, until) of `provider`'s keys kept out now; [] if the database does not answer in `wait`.

        A row whose ``until`` is not a number or is past any daily reset is skipped, with a warning."""
        if self._connecting.locked():  # a connection attempt hangs (the history load gave up on it)
            return []

        def load() -> list[tuple[str, float]]:
            early = None if self._read_unconnected is None else self._read_unconnected(
                _TABLE, f"SELECT api_key_suffix, until FROM {_TABLE} WHERE provider = ?", (provider,))
            if early is not None:
                return [(str(suffix), until) for suffix, until in early if _checked(provider, str(suffix), until)]
            try:
                engine = self._engine()
                if engine is None:
                    return []
                from sqlalchemy import type_coerce
                from sqlalchemy.types import NullType

                table = _table()
                table.metadata.create_all(engine, tables=[table])
                # `until` as the driver gives it, so that one bad value cannot fail the whole read
                raw_until = type_coerce(table.c.until, NullType())
                query = table.select().with_only_columns(table.c.api_key_suffix, raw_until) \
                    .where(table.c.provider == provider)
                with engine.connect() as conn:
                    rows = [(str(suffix), until) for suffix, until in conn.execute(query)]
            except Exception as exc:
                self._note_error(exc)
                return []
            return [(suffix, until) for suffix, until in rows if _checked(provider, suffix, until)]

        try:
            return call_with_deadline(load, wait, name="hfs-usage-cooldowns")
        except DeadlineExceeded:
            return []

    def close(self, timeout: float) -> None:
        """Wait up to `timeout` for the cooldowns being written."""
        deadline = time.monotonic() + timeout
        for thread in self._writes:
            thread.join(max(0.0, deadline - time.monotonic()))


def _checked(provider: str, suffix: str, until: Any) -> bool:
    """Whether the row (`suffix`, `until`) keeps its key out now; a warning if it cannot be right."""
    now = time.time()
    number = isinstance(until, int | float) and not isinstance(until, bool) and math.isfinite(until)
    if number and until <= now:
        return False
    if number and until <= now + LONGEST_WAIT:
        return True
    days = (until - now) / 86400 if number else 0.0
    why = (f"ends {days:,.0f} days from now" if days < 1e9 else f"ends {days:.3g} days from now") + \
        f", past any daily reset (at most {LONGEST_WAIT / 3600:.0f} h ahead)" if number else "is not a finite number"
    log.warning("usage database table hfs_key_cooldowns: %s key …%s: until %r %s; the row is skipped and "
                "the key is not kept out (delete the row, or let the next quota refusal replace it)",
                provider, suffix[-4:], until, why)
    return False
