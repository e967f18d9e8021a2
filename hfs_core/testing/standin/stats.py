"""What the stand-in has seen: `RequestStats`, the counts and the request log behind
:meth:`StandIn.stats`, :meth:`StandIn.request_log` and :meth:`StandIn.requests_for`.

Keys appear only by their last four characters.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from hfs_core.testing.standin.exchange import Request, ToolResult, key_label

LOG_LIMIT = 100_000
"""How many requests :meth:`RequestStats.request_log` keeps (from the last statistics reset)."""


class RequestStats:
    """Thread-safe counts of the LLM requests seen, by status, key and route, and their log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self.reset()

    def reset(self, *, keep_in_flight: bool = True) -> None:
        """Zero the statistics (the requests in flight still counted unless `keep_in_flight` is False)."""
        with self._lock:
            self._total = 0
            self._by_status: dict[int, int] = {}
            self._by_key: dict[str, dict[int, int]] = {}
            self._by_route: dict[str, int] = {}
            self._streams = 0
            if not keep_in_flight:
                self._in_flight = 0
            self._max_in_flight = 0
            self._warmups = 0
            self._tool_calls = 0
            self._tool_results: list[ToolResult] = []
            self._replayed: dict[str, int] = {}
            self._replay_errors: list[str] = []
            self._started = time.monotonic()
            self._log: list[tuple[float, str, int]] = []

    # ------------------------------------------------------------------ counting

    def started(self) -> None:
        """A request is in flight."""
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def finished(self) -> None:
        """A request is answered (or its connection gone)."""
        with self._lock:
            self._in_flight -= 1

    def note_warmup(self) -> None:
        """Count one connection warm-up request (not an LLM request)."""
        with self._lock:
            self._warmups += 1

    def note_replay_error(self, message: str) -> None:
        """Keep the message of a recorded reply due on a route of the other wire format."""
        with self._lock:
            self._replay_errors.append(message)

    def record(
        self,
        request: Request,
        status: int,
        results: tuple[ToolResult, ...] | None,
        *,
        tool_calls: bool = False,
        replayed: str | None = None,
    ) -> None:
        """Count one LLM request answered with `status` (`results`: the tool results new in it)."""
        with self._lock:
            if replayed is not None:
                self._replayed[replayed] = self._replayed.get(replayed, 0) + 1
            self._total += 1
            self._by_status[status] = self._by_status.get(status, 0) + 1
            label = key_label(request.key)
            per_key = self._by_key.setdefault(label, {})
            per_key[status] = per_key.get(status, 0) + 1
            if len(self._log) < LOG_LIMIT:
                self._log.append((round(time.monotonic() - self._started, 4), label, status))
            self._by_route[request.route] = self._by_route.get(request.route, 0) + 1
            if request.stream and status == 200:
                self._streams += 1
            self._tool_calls += tool_calls
            self._tool_results.extend(results or ())

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> dict[str, Any]:
        """The JSON-serialisable statistics (:meth:`StandIn.stats`)."""
        with self._lock:
            return {
                "total": self._total,
                "accepted": self._by_status.get(200, 0),
                "rate_limited": self._by_status.get(429, 0),
                "by_status": {str(k): v for k, v in sorted(self._by_status.items())},
                "by_key": {
                    label: {**{str(k): v for k, v in sorted(counts.items())}, "total": sum(counts.values())}
                    for label, counts in sorted(self._by_key.items())
                },
                "by_route": dict(sorted(self._by_route.items())),
                "streams": self._streams,
                "bad_requests": self._by_status.get(400, 0),
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "warmups": self._warmups,
                "tool_calls": self._tool_calls,
                "tool_results": len(self._tool_results),
                "replayed": dict(sorted(self._replayed.items())),
                "replay_errors": list(self._replay_errors),
                "uptime_s": round(time.monotonic() - self._started, 3),
            }

    def requests_for(self, key_suffix: str, status: int | None = None) -> int:
        """Requests seen for the key ending in ``key_suffix``, optionally only those answered with ``status``."""
        with self._lock:
            counts = self._by_key.get(key_label(key_suffix), {})
            return sum(counts.values()) if status is None else counts.get(status, 0)

    def request_log(self, since: int = 0) -> list[dict[str, Any]]:
        """The requests seen, from entry `since` on (:meth:`StandIn.request_log`)."""
        with self._lock:
            return [{"t": t, "key": key, "status": status} for t, key, status in self._log[max(0, since):]]

    def tool_results(self) -> list[ToolResult]:
        """The tool results clients sent back (each once, in arrival order)."""
        with self._lock:
            return list(self._tool_results)

    @property
    def total(self) -> int:
        """Number of LLM requests seen."""
        with self._lock:
            return self._total

    def count(self, status: int) -> int:
        """Number of LLM requests answered with ``status``."""
        with self._lock:
            return self._by_status.get(status, 0)
