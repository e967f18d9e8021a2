"""Recorded replies of the stand-in: `Replays`, one part of its behaviours.

Real provider failures (:data:`RECORDED`) queued for requests on one key or on any key, used in
order, each for the next N requests or until cleared.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass

from hfs_core.testing.standin.exchange import Provider, Replay, key_digest
from hfs_core.testing.standin.recorded import RECORDED, Recorded


class ReplayMismatchError(ValueError):
    """A recorded reply was due for a request whose route speaks another wire format (a test's mistake)."""


@dataclass
class _PendingReplay:
    entry: Recorded
    left: int | None
    wait: float | None
    after_chunks: int

    def claim(self) -> Replay:
        rendered = self.entry.render(self.wait)
        if self.entry.in_stream:
            event = self.entry.sse_event(rendered.body)
            return Replay(self.entry.name, 200, {}, event, stream_after=self.after_chunks)
        return Replay(self.entry.name, rendered.status, rendered.headers, rendered.body)


class Replays:
    """Recorded replies due, per key and for any key (a part of :class:`Behaviours`, under its lock)."""

    _lock: threading.Lock

    def _init_replays(self) -> None:
        self._replays: dict[str, collections.deque[_PendingReplay]] = {}
        self._replays_all: collections.deque[_PendingReplay] = collections.deque()

    def replay(
        self, key: str, name: str, *, times: int | None = None, wait: float | None = None, after_chunks: int = 0
    ) -> None:
        """Answer requests made with ``key`` with the recorded reply ``name`` (see :data:`RECORDED`).

        ``times=None`` answers every request on the key until :meth:`clear_replays`; ``times=N`` the
        next N. Replies queued for one key are used in order. ``wait`` (seconds) fills the reply's
        time-dependent values (default: the recorded ones). An in-stream reply answers streaming
        requests only: a 200 stream whose error event comes after ``after_chunks`` content chunks.
        """
        pending = self._pending(name, times, wait, after_chunks)
        with self._lock:
            self._replays.setdefault(key_digest(key), collections.deque()).append(pending)

    def replay_all(
        self, name: str, *, times: int | None = None, wait: float | None = None, after_chunks: int = 0
    ) -> None:
        """Like :meth:`replay`, for requests on any key (a provider-wide failure); a key's own replays
        come first."""
        pending = self._pending(name, times, wait, after_chunks)
        with self._lock:
            self._replays_all.append(pending)

    def clear_replays(self) -> None:
        """Drop every pending recorded reply."""
        with self._lock:
            self._clear_replays()

    def _clear_replays(self) -> None:
        self._replays.clear()
        self._replays_all.clear()

    def claim_replay(self, key: str | None, wire: Provider, stream: bool) -> Replay | None:
        """Take the recorded reply due for a request on ``key`` in wire format ``wire``, if any.

        Raises:
            ReplayMismatchError: the reply due belongs to the other wire format (it is not used up).
        """
        with self._lock:
            queues = [self._replays.get(key_digest(key)) if key else None, self._replays_all]
            for queue in queues:
                if not queue or (queue[0].entry.in_stream and not stream):
                    continue
                pending = queue[0]
                if pending.entry.wire != wire:
                    raise ReplayMismatchError(
                        f"recorded reply {pending.entry.name!r} is in the {pending.entry.wire} wire format "
                        f"but the request came on a {wire} route"
                    )
                if pending.left is not None:
                    pending.left -= 1
                    if pending.left == 0:
                        queue.popleft()
                return pending.claim()
            return None

    @staticmethod
    def _pending(name: str, times: int | None, wait: float | None, after_chunks: int) -> _PendingReplay:
        entry = RECORDED.get(name)
        if entry is None:
            raise ValueError(f"unknown recorded reply {name!r}; known: {', '.join(sorted(RECORDED))}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        if wait is not None and (wait < 0 or entry.wait is None):
            raise ValueError(f"wait must be >= 0 and {name!r} must have a time-dependent value")
        if after_chunks < 0 or (after_chunks and not entry.in_stream):
            raise ValueError("after_chunks must be >= 0, and only in-stream replies take it")
        return _PendingReplay(entry, times, wait, after_chunks)
