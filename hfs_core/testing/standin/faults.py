"""Injected faults of the stand-in: `Faults`, one part of its behaviours.

The next requests failing with a status, every request failing for a while, and streams broken
after a number of content chunks (with an error event, or by dropping the connection).
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Literal

from hfs_core.testing.standin.exchange import Decision, StreamBreak, retry_headers

StreamFailMode = Literal["error", "abort"]


@dataclass(frozen=True)
class _Fault:
    status: int
    message: str
    retry_after: float | None

    def decision(self) -> Decision:
        headers = retry_headers(self.retry_after) if self.retry_after is not None else {}
        return Decision(self.status, self.message, headers)


class Faults:
    """Failures on demand (a part of :class:`Behaviours`, under its lock)."""

    _lock: threading.Lock

    def _init_faults(self) -> None:
        self._fail_next: collections.deque[_Fault] = collections.deque()
        self._fail_until = 0.0
        self._fail_for_fault: _Fault | None = None
        self._stream_fail_chunks: int | None = None
        self._stream_fail_mode: StreamFailMode = "error"
        self._stream_fail_times: int | None = None

    def fail_next(
        self, n: int = 1, status: int = 503, message: str = "overloaded", retry_after: float | None = None
    ) -> None:
        """Make the next ``n`` LLM requests (any key) fail with ``status``.

        ``retry_after`` (seconds) adds ``Retry-After``/``retry-after-ms`` headers.
        """
        with self._lock:
            self._fail_next.extend(_Fault(status, message, retry_after) for _ in range(max(0, n)))

    def fail_for(
        self, seconds: float, status: int = 503, message: str = "overloaded", retry_after: float | None = None
    ) -> None:
        """Fail every LLM request with ``status`` for the next ``seconds`` seconds."""
        with self._lock:
            self._fail_until = time.monotonic() + seconds
            self._fail_for_fault = _Fault(status, message, retry_after)

    def stream_fail_after(
        self, chunks: int | None, *, mode: StreamFailMode = "error", times: int | None = None
    ) -> None:
        """Break streamed responses after ``chunks`` content chunks (``None`` turns this off).

        ``mode="error"`` sends a provider-shaped error event and closes the stream (the SDKs raise
        their ``APIError``); ``mode="abort"`` drops the connection mid-body. ``times`` limits how many
        streams break (``None`` = every stream until cleared).
        """
        if mode not in ("error", "abort"):
            raise ValueError("mode must be 'error' or 'abort'")
        with self._lock:
            self._stream_fail_chunks = chunks
            self._stream_fail_mode = mode
            self._stream_fail_times = times

    def clear_faults(self) -> None:
        """Drop pending ``fail_next``/``fail_for``/``stream_fail_after`` faults."""
        with self._lock:
            self._clear_faults()

    def _clear_faults(self) -> None:
        self._fail_next.clear()
        self._fail_until = 0.0
        self._fail_for_fault = None
        self._stream_fail_chunks = None
        self._stream_fail_times = None

    def _fault_due(self, now: float) -> Decision | None:
        """The failure a request arriving at ``now`` meets, if any (lock held)."""
        if self._fail_next:
            return self._fail_next.popleft().decision()
        if self._fail_for_fault is not None and now < self._fail_until:
            return self._fail_for_fault.decision()
        return None

    def claim_stream_break(self) -> StreamBreak | None:
        """Claim one broken stream, if configured."""
        with self._lock:
            chunks = self._stream_fail_chunks
            if chunks is None:
                return None
            if self._stream_fail_times is not None:
                if self._stream_fail_times <= 0:
                    return None
                self._stream_fail_times -= 1
            return StreamBreak(chunks, self._stream_fail_mode)
