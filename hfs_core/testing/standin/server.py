"""The :class:`StandIn` object: lifecycle, the configuration API, statistics (kept by its
:class:`RequestStats`, `stats`), and the small interface its HTTP handler talks to
(:meth:`StandIn.exchange`, connection and warm-up notes)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

from hfs_core.testing.standin import openai
from hfs_core.testing.standin.behaviours import Behaviours, Reply
from hfs_core.testing.standin.exchange import Decision, Plan, Replay, Request, StreamBreak, ToolResult
from hfs_core.testing.standin.handler import HOST, Server
from hfs_core.testing.standin.replays import ReplayMismatchError
from hfs_core.testing.standin.stats import RequestStats


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

    Failures, scripted for any provider's keys while it runs (docs/plugins.md, "Scripting your
    provider's failures", shows them on a plugin of one's own): :meth:`set_key` (a revoked key:
    401; out of credits: 402; always throttled: 429), :meth:`replay`/:meth:`replay_all` (a
    provider's recorded reply, see :data:`RECORDED`), :meth:`set_limit`/:meth:`set_key_limit`/
    :meth:`set_group_limit` (429 over a request count per window), :meth:`fail_next`/:meth:`fail_for`
    (a status for the next requests, or for a while), :meth:`stream_fail_after` (a stream broken
    after some chunks); :meth:`requests_for` and :meth:`stats` say what it saw, :meth:`reset` undoes all.
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
        self._stats = RequestStats()

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
        """Clear faults, rate-limit windows, key states, per-key and group limits, tool scripts, replays and
        statistics."""
        super().reset()
        self._stats.reset(keep_in_flight=False)

    def control(self, command: dict[str, Any]) -> dict[str, Any]:
        """Apply a JSON-style control command (what ``POST /control`` accepts); returns ``{"ok": True}``.

        Recognised fields, applied in this order: ``reset`` (bool), ``reset_stats`` (bool),
        ``latency``, ``error_latency``, ``chunk_delay``, ``reply``, ``accept_any_key``,
        ``limit`` ({``rpm``, ``window``}), ``keys`` (list of {``key``, ``status``?, ``rpm``?}),
        ``groups`` (list of {``keys``, ``rpm``}, see :meth:`set_group_limit`),
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
        for entry in command.get("groups") or []:
            self.set_group_limit([str(key) for key in entry["keys"]], entry["rpm"])
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
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        """Zero the statistics (rate-limit windows and key states are kept)."""
        self._stats.reset()

    def requests_for(self, key_suffix: str, status: int | None = None) -> int:
        """Requests seen for the key ending in ``key_suffix`` (its last 4 chars are used; a full
        key works too), optionally only those answered with ``status``."""
        return self._stats.requests_for(key_suffix, status)

    def request_log(self, since: int = 0) -> list[dict[str, Any]]:
        """The LLM requests seen, in arrival order from entry `since` on (``GET /log?since=N``): each
        ``{"t": seconds since the statistics started, "key": last 4 characters, "status": HTTP status}``.
        The first :data:`.stats.LOG_LIMIT` requests since the statistics started are kept."""
        return self._stats.request_log(since)

    def tool_results(self) -> list[ToolResult]:
        """The tool results clients sent back (each once, in arrival order)."""
        return self._stats.tool_results()

    @property
    def accepted(self) -> int:
        """Number of LLM requests answered 200."""
        return self.count(200)

    @property
    def total(self) -> int:
        """Number of LLM requests seen."""
        return self._stats.total

    def count(self, status: int) -> int:
        """Number of LLM requests answered with ``status``."""
        return self._stats.count(status)

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
        self._stats.note_warmup()

    @contextlib.contextmanager
    def exchange(self, request: Request) -> Iterator[Plan]:
        """Decide, record and plan the answer to one LLM request; it counts as in flight inside."""
        self._stats.started()
        try:
            latency, error_latency, chunk_delay = self.delays()
            try:
                replay = self.claim_replay(request.key, request.provider, request.stream)
            except ReplayMismatchError as exc:
                self._stats.note_replay_error(str(exc))
                self._stats.record(request, 500, None)
                misuse = Replay("", 500, {}, f"stand-in misuse: {exc}".encode(), "text/plain; charset=utf-8")
                yield Plan(Decision(500, str(exc)), error_latency, chunk_delay, replay=misuse)
                return
            if replay is not None and replay.stream_after is None:
                self._stats.record(request, replay.status, None, replayed=replay.name)
                yield Plan(Decision(replay.status), error_latency, chunk_delay, replay=replay)
                return
            hold = None if replay else self.hold_tokens(request)
            if isinstance(hold, Replay):
                self._stats.record(request, hold.status, None)
                yield Plan(Decision(hold.status), error_latency, chunk_delay, replay=hold)
                return
            decision = Decision(200) if replay else self.decide(request.key, request.model, request.problem,
                                                                request.provider)
            if decision.status != 200:
                if hold is not None:
                    self.settle_tokens(hold, 0)
                self._stats.record(request, decision.status, None)
                yield Plan(decision, error_latency, chunk_delay, replay=decision.replay)
                return
            answer = self.answer(request.conversation)
            if hold is not None:  # answered: the request counts what it used, before a client can see the answer
                self.settle_tokens(hold, openai.usage(request, answer)["total_tokens"])
            self._stats.record(
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
            self._stats.finished()
