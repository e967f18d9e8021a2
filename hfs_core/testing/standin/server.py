"""The :class:`StandIn` object: lifecycle, the configuration API, statistics, and the small
interface its HTTP handler talks to (:meth:`StandIn.exchange`, connection and warm-up notes)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

from hfs_core.testing.standin.behaviours import Behaviours, ReplayMismatchError, Reply
from hfs_core.testing.standin.exchange import Decision, Plan, Replay, Request, StreamBreak, ToolResult, key_label
from hfs_core.testing.standin.handler import HOST, Server

LOG_LIMIT = 100_000
"""How many requests :meth:`StandIn.request_log` keeps (from the last statistics reset)."""


class StandIn(Behaviours):
    """A local provider stand-in HTTP server with thread-safe, live-adjustable behaviour.

    Args:
        latency: Seconds slept (in the handler thread) before answering each LLM request.
        rpm: Requests allowed per key per ``window`` seconds (sliding window over accepted requests,
            counted at arrival time); ``None`` means unlimited.
        window: Length of the rate-limit window in seconds.
        accept_any_key: Accept any non-empty key; when ``False`` only registered keys are accepted
            and any other key gets 401.
        keys: Keys registered as live (status 200).
        port: TCP port on 127.0.0.1; ``0`` picks a free one.
        reply: Reply text, or a function of the last user message; ``None`` means
            ``"stand-in reply: " + <last user message text>``.
        error_latency: Seconds slept before answering an error; ``None`` means the same as ``latency``.
        chunk_delay: Seconds slept between streamed chunks.

    Use as a context manager (``with StandIn() as s: ... s.url``) or with :meth:`start`/:meth:`stop`.
    """

    def __init__(
        self,
        latency: float = 0.0,
        rpm: int | None = None,
        window: float = 60.0,
        accept_any_key: bool = True,
        keys: Iterable[str] = (),
        *,
        port: int = 0,
        reply: Reply = None,
        error_latency: float | None = None,
        chunk_delay: float = 0.0,
    ) -> None:
        super().__init__(
            latency,
            rpm,
            window,
            accept_any_key,
            keys,
            reply=reply,
            error_latency=error_latency,
            chunk_delay=chunk_delay,
        )
        self._requested_port = port
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._init_stats()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> StandIn:
        """Bind 127.0.0.1 and serve in a background daemon thread; returns ``self``."""
        with self._lock:
            if self._server is not None:
                return self
            server = Server((HOST, self._requested_port), self)
            self._server = server
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="standin-server", daemon=True
        )
        self._thread = thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open client connection."""
        with self._lock:
            server, self._server = self._server, None
            thread, self._thread = self._thread, None
            connections = list(self._connections)
            self._connections.clear()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port (raises ``RuntimeError`` when not started)."""
        server = self._server
        if server is None:
            raise RuntimeError("StandIn is not running; call start() first")
        return int(server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for every SDK: ``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    # ------------------------------------------------------------------ configuration

    def reset(self) -> None:
        """Clear faults, rate-limit windows, key states, per-key limits, tool scripts, replays and statistics."""
        super().reset()
        with self._lock:
            self._init_stats()

    def control(self, command: dict[str, Any]) -> dict[str, Any]:
        """Apply a JSON-style control command (what ``POST /control`` accepts); returns ``{"ok": True}``.

        Recognised fields, applied in this order: ``reset`` (bool), ``reset_stats`` (bool),
        ``latency``, ``error_latency``, ``chunk_delay``, ``reply``, ``accept_any_key``,
        ``limit`` ({``rpm``, ``window``}), ``keys`` (list of {``key``, ``status``?, ``rpm``?}),
        ``fail_next`` ({``n``, ``status``?, ``message``?, ``retry_after``?}), ``fail_for``
        ({``seconds``, ``status``?, ``message``?, ``retry_after``?}), ``stream_fail_after``
        ({``chunks``, ``mode``?, ``times``?} or an int / null), ``tool_calls`` (list of
        {``name``, ``arguments``?}, see :meth:`script_tool_call`; ``[]`` clears them),
        ``clear_replays`` (bool), ``replay`` (list of {``name``, ``key``?, ``times``?, ``wait``?,
        ``after_chunks``?}; without ``key`` it is :meth:`replay_all`).
        """
        if command.get("reset"):
            self.reset()
        if command.get("reset_stats"):
            self.reset_stats()
        self.configure(
            latency=command.get("latency"),
            error_latency=command.get("error_latency"),
            chunk_delay=command.get("chunk_delay"),
            reply=command.get("reply"),
            accept_any_key=command.get("accept_any_key"),
        )
        if isinstance(limit := command.get("limit"), dict):
            self.set_limit(limit.get("rpm"), limit.get("window"))
        for entry in command.get("keys") or []:
            if "status" in entry:
                self.set_key(str(entry["key"]), int(entry["status"]))
            if "rpm" in entry:
                self.set_key_limit(str(entry["key"]), entry["rpm"])
        if isinstance(fn := command.get("fail_next"), dict):
            self.fail_next(
                int(fn.get("n", 1)),
                int(fn.get("status", 503)),
                str(fn.get("message", "overloaded")),
                fn.get("retry_after"),
            )
        if isinstance(ff := command.get("fail_for"), dict):
            self.fail_for(
                float(ff["seconds"]),
                int(ff.get("status", 503)),
                str(ff.get("message", "overloaded")),
                ff.get("retry_after"),
            )
        if "stream_fail_after" in command:
            sfa = command["stream_fail_after"]
            if isinstance(sfa, dict):
                self.stream_fail_after(sfa.get("chunks"), mode=sfa.get("mode", "error"), times=sfa.get("times"))
            else:
                self.stream_fail_after(sfa)
        if isinstance(tool_calls := command.get("tool_calls"), list):
            if not tool_calls:
                self.clear_tool_calls()
            for entry in tool_calls:
                arguments = entry.get("arguments") or {}
                if not isinstance(arguments, dict):
                    raise ValueError("tool_calls[].arguments must be a JSON object")
                self.script_tool_call(str(entry["name"]), arguments)
        if command.get("clear_replays"):
            self.clear_replays()
        for entry in command.get("replay") or []:
            times, wait, after = entry.get("times"), entry.get("wait"), int(entry.get("after_chunks", 0))
            if "key" in entry:
                self.replay(str(entry["key"]), str(entry["name"]), times=times, wait=wait, after_chunks=after)
            else:
                self.replay_all(str(entry["name"]), times=times, wait=wait, after_chunks=after)
        return {"ok": True}

    # ------------------------------------------------------------------ statistics

    def stats(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot of the request statistics.

        Keys: ``total`` (LLM requests), ``accepted`` (answered 200), ``rate_limited`` (429s),
        ``by_status`` ({status: n}), ``by_key`` ({last-4-chars: {status: n, "total": n}}),
        ``by_route`` ({path: n}), ``streams``, ``bad_requests``, ``in_flight``, ``max_in_flight``,
        ``warmups``, ``tool_calls`` (answers that called tools), ``tool_results`` (tool results
        received), ``replayed`` ({recorded reply name: n}), ``replay_errors`` (messages of replies due
        on a route of the other wire format, answered 500), ``uptime_s``. Keys appear only by their
        last four characters.
        """
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
                "uptime_s": round(time.monotonic() - self._stats_started, 3),
            }

    def reset_stats(self) -> None:
        """Zero the statistics (rate-limit windows and key states are kept)."""
        with self._lock:
            in_flight = self._in_flight
            self._init_stats()
            self._in_flight = in_flight

    def requests_for(self, key_suffix: str, status: int | None = None) -> int:
        """Requests seen for the key ending in ``key_suffix`` (its last 4 chars are used; a full
        key works too), optionally only those answered with ``status``."""
        with self._lock:
            counts = self._by_key.get(key_label(key_suffix), {})
            return sum(counts.values()) if status is None else counts.get(status, 0)

    def request_log(self, since: int = 0) -> list[dict[str, Any]]:
        """The LLM requests seen, in arrival order from entry `since` on (``GET /log?since=N``): each
        ``{"t": seconds since the statistics started, "key": last 4 characters, "status": HTTP status}``.
        The first :data:`LOG_LIMIT` requests since the statistics started are kept."""
        with self._lock:
            return [{"t": t, "key": key, "status": status} for t, key, status in self._log[max(0, since):]]

    def tool_results(self) -> list[ToolResult]:
        """The tool results clients sent back (each once, in arrival order)."""
        with self._lock:
            return list(self._tool_results)

    @property
    def accepted(self) -> int:
        """Number of LLM requests answered 200."""
        return self.count(200)

    @property
    def total(self) -> int:
        """Number of LLM requests seen."""
        with self._lock:
            return self._total

    def count(self, status: int) -> int:
        """Number of LLM requests answered with ``status``."""
        with self._lock:
            return self._by_status.get(status, 0)

    _total: int
    _by_status: dict[int, int]
    _by_key: dict[str, dict[int, int]]
    _by_route: dict[str, int]
    _streams: int
    _in_flight: int
    _max_in_flight: int
    _warmups: int
    _tool_calls: int
    _tool_results: list[ToolResult]
    _replayed: dict[str, int]
    _replay_errors: list[str]
    _stats_started: float
    _log: list[tuple[float, str, int]]

    def _init_stats(self) -> None:
        self._total = 0
        self._by_status = {}
        self._by_key = {}
        self._by_route = {}
        self._streams = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._warmups = 0
        self._tool_calls = 0
        self._tool_results = []
        self._replayed = {}
        self._replay_errors = []
        self._stats_started = time.monotonic()
        self._log = []

    # ------------------------------------------------------------------ the handler's interface

    def connection_opened(self, conn: socket.socket) -> None:
        """Note an open client connection (closed by :meth:`stop`)."""
        with self._lock:
            self._connections.add(conn)

    def connection_closed(self, conn: socket.socket) -> None:
        """Forget a client connection."""
        with self._lock:
            self._connections.discard(conn)

    def note_warmup(self) -> None:
        """Count one connection warm-up request (not an LLM request)."""
        with self._lock:
            self._warmups += 1

    @contextlib.contextmanager
    def exchange(self, request: Request) -> Iterator[Plan]:
        """Decide, record and plan the answer to one LLM request; it counts as in flight inside."""
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            latency, error_latency, chunk_delay = self.delays()
            try:
                replay = self.claim_replay(request.key, request.provider, request.stream)
            except ReplayMismatchError as exc:
                with self._lock:
                    self._replay_errors.append(str(exc))
                self._record(request, 500, None)
                misuse = Replay("", 500, {}, f"stand-in misuse: {exc}".encode(), "text/plain; charset=utf-8")
                yield Plan(Decision(500, str(exc)), error_latency, chunk_delay, replay=misuse)
                return
            if replay is not None and replay.stream_after is None:
                self._record(request, replay.status, None, replayed=replay.name)
                yield Plan(Decision(replay.status), error_latency, chunk_delay, replay=replay)
                return
            decision = Decision(200) if replay else self.decide(request.key, request.model, request.problem)
            if decision.status != 200:
                self._record(request, decision.status, None)
                yield Plan(decision, error_latency, chunk_delay)
                return
            answer = self.answer(request.conversation)
            self._record(
                request,
                200,
                request.conversation.fresh_results,
                tool_calls=bool(answer.tool_calls),
                replayed=replay.name if replay else None,
            )
            if replay is not None and replay.stream_after is not None:
                stream_break: StreamBreak | None = StreamBreak(replay.stream_after, "error", replay.body)
            else:
                stream_break = self.claim_stream_break() if request.stream else None
            yield Plan(decision, latency, chunk_delay, answer, stream_break)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _record(
        self,
        request: Request,
        status: int,
        results: tuple[ToolResult, ...] | None,
        *,
        tool_calls: bool = False,
        replayed: str | None = None,
    ) -> None:
        with self._lock:
            if replayed is not None:
                self._replayed[replayed] = self._replayed.get(replayed, 0) + 1
            self._total += 1
            self._by_status[status] = self._by_status.get(status, 0) + 1
            label = key_label(request.key)
            per_key = self._by_key.setdefault(label, {})
            per_key[status] = per_key.get(status, 0) + 1
            if len(self._log) < LOG_LIMIT:
                self._log.append((round(time.monotonic() - self._stats_started, 4), label, status))
            self._by_route[request.route] = self._by_route.get(request.route, 0) + 1
            if request.stream and status == 200:
                self._streams += 1
            self._tool_calls += tool_calls
            self._tool_results.extend(results or ())
