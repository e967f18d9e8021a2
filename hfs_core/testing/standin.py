"""Local stand-in for LLM provider HTTP APIs (OpenAI-style chat completions and Gemini).

The server listens on ``127.0.0.1`` only and imitates the wire format of the real providers closely
enough that the unmodified SDKs (``groq``, ``cerebras-cloud-sdk``, ``openai``, ``google-genai``) and
the Agno models built on them work against it when their ``base_url`` points at :attr:`StandIn.url`.

One base URL serves every provider, because each SDK appends its own path:

* any ``POST .../chat/completions`` (groq: ``/openai/v1/chat/completions``, cerebras:
  ``/v1/chat/completions``, openai with ``base_url=url``: ``/chat/completions``); the key comes from
  ``Authorization: Bearer <key>``;
* ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent`` (SSE with
  ``?alt=sse``); the key comes from ``x-goog-api-key`` or ``?key=``;
* ``GET /v1/tcp_warming`` (the cerebras SDK's connection warm-up; answered, never counted);
* ``GET /stats`` (the :meth:`StandIn.stats` JSON) and ``POST /control`` (JSON config changes, see
  :meth:`StandIn.control`).

Behaviour (latency, per-key sliding-window request limits, key states, injected faults, broken
streams) is configured through the thread-safe Python API of :class:`StandIn`, also while it runs.
Full API keys are never stored, logged or echoed: keys are kept as SHA-256 digests and reported by
their last four characters only.

Run it in the foreground with ``python -m hfs_core.testing.standin --port 0``; it prints one line
``STANDIN_URL=http://127.0.0.1:<port>`` when ready and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import json
import math
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

__all__ = ["KEY_STATUSES", "Reply", "StandIn", "key_label", "main"]

#: Statuses accepted by :meth:`StandIn.set_key`.
KEY_STATUSES: frozenset[int] = frozenset({200, 401, 402, 403, 429, 503})

#: A fixed reply text, or a function from the last user message text to the reply text.
Reply = str | Callable[[str], str] | None

StreamFailMode = Literal["error", "abort"]
Provider = Literal["openai", "gemini"]

_HOST = "127.0.0.1"
_GEMINI_PATH = re.compile(r"/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)$")
_DISCONNECT_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)

_OPENAI_ERROR_KIND: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    402: ("insufficient_quota", "insufficient_quota"),
    403: ("permission_denied", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("internal_server_error", "internal_server_error"),
    502: ("internal_server_error", "bad_gateway"),
    503: ("internal_server_error", "service_unavailable"),
    504: ("internal_server_error", "timeout"),
}
_GEMINI_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_GEMINI_RATE_LIMIT_MESSAGE = "Resource has been exhausted (e.g. check quota)."


def key_label(key: str | None) -> str:
    """Return the public label of ``key``: its last four characters (``"<none>"`` when missing)."""
    if not key:
        return "<none>"
    return key[-4:]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _count_tokens(text: str) -> int:
    """Deterministic token estimate: the number of whitespace-separated words, at least 1."""
    return max(1, len(text.split()))


def _split_pieces(text: str, pieces: int = 4) -> list[str]:
    """Split ``text`` into at most ``pieces`` non-empty parts (by words) that concatenate to it."""
    words = re.findall(r"\s*\S+\s*", text)
    if len(words) <= 1:
        return [text]
    count = min(pieces, len(words))
    size = math.ceil(len(words) / count)
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


def _content_text(content: Any) -> str:
    """Text of an OpenAI message ``content`` (a string or a list of content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type", "text") == "text"
        ]
        return " ".join(t for t in texts if t)
    return ""


def _last_user_text_openai(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def _gemini_parts_text(content: Any) -> str:
    if not isinstance(content, dict):
        return ""
    parts = content.get("parts")
    if not isinstance(parts, list):
        return ""
    return " ".join(str(p["text"]) for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def _last_user_text_gemini(contents: list[Any]) -> str:
    for content in reversed(contents):
        if isinstance(content, dict) and content.get("role", "user") == "user":
            return _gemini_parts_text(content)
    return ""


def _prompt_text_openai(messages: list[Any]) -> str:
    return " ".join(_content_text(m.get("content")) for m in messages if isinstance(m, dict))


def _prompt_text_gemini(body: dict[str, Any]) -> str:
    texts = [_gemini_parts_text(c) for c in body.get("contents") or [] if isinstance(c, dict)]
    texts.append(_gemini_parts_text(body.get("systemInstruction") or body.get("system_instruction")))
    return " ".join(t for t in texts if t)


def _error_body(provider: Provider, status: int, message: str) -> dict[str, Any]:
    """A provider-shaped error body."""
    if provider == "gemini":
        return {
            "error": {"code": status, "message": message, "status": _GEMINI_STATUS.get(status, "UNKNOWN")}
        }
    err_type, code = _OPENAI_ERROR_KIND.get(status, ("api_error", "error"))
    return {"error": {"message": message, "type": err_type, "code": code}}


class _Decision:
    """What to answer to one request, decided under the lock at arrival time."""

    __slots__ = ("headers", "message", "status")

    def __init__(self, status: int, message: str = "", headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.message = message
        self.headers: dict[str, str] = headers or {}


class _Fault:
    __slots__ = ("message", "retry_after", "status")

    def __init__(self, status: int, message: str, retry_after: float | None) -> None:
        self.status = status
        self.message = message
        self.retry_after = retry_after


def _retry_headers(wait: float) -> dict[str, str]:
    wait = max(0.0, wait)
    return {
        "Retry-After": str(max(1, math.ceil(wait))),
        "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
    }


class StandIn:
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
        self._lock = threading.Lock()
        self._requested_port = port
        self._latency = float(latency)
        self._error_latency = error_latency
        self._chunk_delay = float(chunk_delay)
        self._rpm = rpm
        self._window = float(window)
        self._accept_any_key = accept_any_key
        self._reply: Reply = reply
        self._key_status: dict[str, int] = {}
        self._key_label: dict[str, str] = {}
        self._key_limits: dict[str, int | None] = {}
        self._accepted_at: dict[str, collections.deque[float]] = {}
        self._fail_next: collections.deque[_Fault] = collections.deque()
        self._fail_until = 0.0
        self._fail_for_fault: _Fault | None = None
        self._stream_fail_chunks: int | None = None
        self._stream_fail_mode: StreamFailMode = "error"
        self._stream_fail_times: int | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._init_stats()
        for key in keys:
            self._register(key, 200)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> StandIn:
        """Bind 127.0.0.1 and serve in a background daemon thread; returns ``self``."""
        with self._lock:
            if self._server is not None:
                return self
            server = _Server((_HOST, self._requested_port), _Handler, self)
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
        return f"http://{_HOST}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    # ------------------------------------------------------------------ configuration

    @property
    def latency(self) -> float:
        """Seconds slept before answering each LLM request."""
        return self._latency

    @latency.setter
    def latency(self, value: float) -> None:
        with self._lock:
            self._latency = float(value)

    @property
    def reply(self) -> Reply:
        """The reply text (or function of the last user message); ``None`` means the default echo."""
        return self._reply

    @reply.setter
    def reply(self, value: Reply) -> None:
        with self._lock:
            self._reply = value

    @property
    def accept_any_key(self) -> bool:
        """Whether unregistered keys are accepted."""
        return self._accept_any_key

    @accept_any_key.setter
    def accept_any_key(self, value: bool) -> None:
        with self._lock:
            self._accept_any_key = bool(value)

    def configure(
        self,
        *,
        latency: float | None = None,
        error_latency: float | None = None,
        chunk_delay: float | None = None,
        reply: str | None = None,
        accept_any_key: bool | None = None,
    ) -> None:
        """Change several plain settings at once (``None`` leaves a setting unchanged)."""
        with self._lock:
            if latency is not None:
                self._latency = float(latency)
            if error_latency is not None:
                self._error_latency = float(error_latency)
            if chunk_delay is not None:
                self._chunk_delay = float(chunk_delay)
            if reply is not None:
                self._reply = reply
            if accept_any_key is not None:
                self._accept_any_key = bool(accept_any_key)

    def set_limit(self, rpm: int | None, window: float | None = None) -> None:
        """Set the default per-key limit: ``rpm`` requests per ``window`` seconds (``None`` = unlimited)."""
        if rpm is not None and rpm < 0:
            raise ValueError("rpm must be >= 0 or None")
        with self._lock:
            self._rpm = rpm
            if window is not None:
                if window <= 0:
                    raise ValueError("window must be > 0")
                self._window = float(window)

    def set_key_limit(self, key: str, rpm: int | None) -> None:
        """Override the request limit for one key (``None`` = unlimited for that key)."""
        if rpm is not None and rpm < 0:
            raise ValueError("rpm must be >= 0 or None")
        digest = _digest(key)
        with self._lock:
            self._key_label[digest] = key_label(key)
            self._key_limits[digest] = rpm

    def clear_key_limit(self, key: str) -> None:
        """Remove a per-key limit override; the key falls back to the default limit."""
        with self._lock:
            self._key_limits.pop(_digest(key), None)

    def set_key(self, key: str, status: int = 200) -> None:
        """Register ``key`` with a state: 200 live, 401 invalid, 402 out of credits, 403 forbidden,
        429 always rate limited, 503 unavailable."""
        if status not in KEY_STATUSES:
            raise ValueError(f"status must be one of {sorted(KEY_STATUSES)}")
        with self._lock:
            self._register(key, status)

    def remove_key(self, key: str) -> None:
        """Forget a registered key (it is then accepted only when ``accept_any_key`` is on)."""
        with self._lock:
            self._key_status.pop(_digest(key), None)

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

    def reset(self) -> None:
        """Clear faults, rate-limit windows, key states, per-key limits and statistics."""
        with self._lock:
            self._clear_faults()
            self._key_status.clear()
            self._key_limits.clear()
            self._key_label.clear()
            self._accepted_at.clear()
            self._init_stats()

    def control(self, command: dict[str, Any]) -> dict[str, Any]:
        """Apply a JSON-style control command (what ``POST /control`` accepts); returns ``{"ok": True}``.

        Recognised fields, applied in this order: ``reset`` (bool), ``reset_stats`` (bool),
        ``latency``, ``error_latency``, ``chunk_delay``, ``reply``, ``accept_any_key``,
        ``limit`` ({``rpm``, ``window``}), ``keys`` (list of {``key``, ``status``?, ``rpm``?}),
        ``fail_next`` ({``n``, ``status``?, ``message``?, ``retry_after``?}), ``fail_for``
        ({``seconds``, ``status``?, ``message``?, ``retry_after``?}), ``stream_fail_after``
        ({``chunks``, ``mode``?, ``times``?} or an int / null).
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
                self.stream_fail_after(
                    sfa.get("chunks"), mode=sfa.get("mode", "error"), times=sfa.get("times")
                )
            else:
                self.stream_fail_after(sfa)
        return {"ok": True}

    # ------------------------------------------------------------------ statistics

    def stats(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot of the request statistics.

        Keys: ``total`` (LLM requests), ``accepted`` (answered 200), ``rate_limited`` (429s),
        ``by_status`` ({status: n}), ``by_key`` ({last-4-chars: {status: n, "total": n}}),
        ``by_route`` ({path: n}), ``streams``, ``bad_requests``, ``in_flight``, ``max_in_flight``,
        ``warmups``, ``uptime_s``. Keys appear only by their last four characters.
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

    # ------------------------------------------------------------------ internals (lock held)

    _total: int
    _by_status: dict[int, int]
    _by_key: dict[str, dict[int, int]]
    _by_route: dict[str, int]
    _streams: int
    _in_flight: int
    _max_in_flight: int
    _warmups: int
    _stats_started: float

    def _init_stats(self) -> None:
        self._total = 0
        self._by_status = {}
        self._by_key = {}
        self._by_route = {}
        self._streams = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._warmups = 0
        self._stats_started = time.monotonic()

    def _clear_faults(self) -> None:
        self._fail_next.clear()
        self._fail_until = 0.0
        self._fail_for_fault = None
        self._stream_fail_chunks = None
        self._stream_fail_times = None

    def _register(self, key: str, status: int) -> None:
        digest = _digest(key)
        self._key_status[digest] = status
        self._key_label[digest] = key_label(key)

    # ------------------------------------------------------------------ internals (called by handlers)

    def _track_connection(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _note_warmup(self) -> None:
        with self._lock:
            self._warmups += 1

    def _record(self, key: str | None, route: str, status: int, stream: bool) -> None:
        with self._lock:
            self._total += 1
            self._by_status[status] = self._by_status.get(status, 0) + 1
            per_key = self._by_key.setdefault(key_label(key), {})
            per_key[status] = per_key.get(status, 0) + 1
            self._by_route[route] = self._by_route.get(route, 0) + 1
            if stream and status == 200:
                self._streams += 1

    def _decide(self, key: str | None, model: str, valid: str | None) -> _Decision:
        """Decide the fate of one request at arrival: faults, key state, validation, rate limit.

        ``valid`` is ``None`` for a well-formed request or the 400 message otherwise.
        """
        now = time.monotonic()
        with self._lock:
            if self._fail_next:
                return self._fault_decision(self._fail_next.popleft())
            if self._fail_for_fault is not None and now < self._fail_until:
                return self._fault_decision(self._fail_for_fault)
            hint = f"...{key_label(key)}"
            if not key:
                return _Decision(401, "Missing API key.")
            digest = _digest(key)
            state = self._key_status.get(digest)
            if state is None:
                if not self._accept_any_key:
                    return _Decision(401, f"Invalid API Key (key ending in {hint}).")
                state = 200
            if state == 429:
                return _Decision(
                    429,
                    f"Rate limit reached for requests per minute (RPM) on model `{model}` for key ending "
                    f"in {hint}. Please try again later.",
                    _retry_headers(self._window),
                )
            if state != 200:
                return _Decision(state, self._key_state_message(state, hint))
            if valid is not None:
                return _Decision(400, valid)
            limit = self._key_limits.get(digest, self._rpm)
            window = self._window
            accepted = self._accepted_at.get(digest)
            if accepted is None:
                accepted = self._accepted_at[digest] = collections.deque()
            cutoff = now - window
            while accepted and accepted[0] <= cutoff:
                accepted.popleft()
            if limit is not None and len(accepted) >= limit:
                wait = (accepted[0] + window - now) if accepted else window
                headers = _retry_headers(wait)
                headers.update(self._ratelimit_headers(limit, 0, wait))
                return _Decision(
                    429,
                    f"Rate limit reached for requests per minute (RPM) on model `{model}` for key ending in "
                    f"{hint}: Limit {limit}, Used {len(accepted)}, Requested 1. "
                    f"Please try again in {max(wait, 0.0):.3f}s.",
                    headers,
                )
            accepted.append(now)
            headers = {}
            if limit is not None:
                reset = accepted[0] + window - now
                headers = self._ratelimit_headers(limit, limit - len(accepted), reset)
            return _Decision(200, headers=headers)

    @staticmethod
    def _ratelimit_headers(limit: int, remaining: int, reset: float) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(limit),
            "x-ratelimit-remaining-requests": str(max(0, remaining)),
            "x-ratelimit-reset-requests": f"{max(0.0, reset):.3f}s",
        }

    def _fault_decision(self, fault: _Fault) -> _Decision:
        headers = _retry_headers(fault.retry_after) if fault.retry_after is not None else {}
        return _Decision(fault.status, fault.message, headers)

    @staticmethod
    def _key_state_message(state: int, hint: str) -> str:
        if state == 401:
            return f"Invalid API Key (key ending in {hint})."
        if state == 402:
            return f"Payment required: credits exhausted for the key ending in {hint}."
        if state == 403:
            return f"Permission denied: the organization of the key ending in {hint} is restricted."
        return "Service unavailable. Please try again later."

    def _reply_for(self, user_text: str) -> str:
        with self._lock:
            reply = self._reply
        if reply is None:
            return "stand-in reply: " + user_text
        if callable(reply):
            return reply(user_text)
        return reply

    def _delays(self) -> tuple[float, float, float]:
        with self._lock:
            error_latency = self._latency if self._error_latency is None else self._error_latency
            return self._latency, error_latency, self._chunk_delay

    def _stream_break(self) -> tuple[int, StreamFailMode] | None:
        """Claim one broken stream, if configured: ``(chunks, mode)``."""
        with self._lock:
            chunks = self._stream_fail_chunks
            if chunks is None:
                return None
            if self._stream_fail_times is not None:
                if self._stream_fail_times <= 0:
                    return None
                self._stream_fail_times -= 1
            return chunks, self._stream_fail_mode


class _Server(ThreadingHTTPServer):
    """Threaded HTTP/1.1 server that skips reverse DNS and stays silent about client disconnects."""

    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler], standin: StandIn) -> None:
        self.standin = standin
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a potentially slow DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, _DISCONNECT_ERRORS):
            return
        super().handle_error(request, client_address)


class _AbortStream(Exception):
    """Raised inside a handler to drop the connection mid-stream."""


class _Handler(BaseHTTPRequestHandler):
    """Request handler; one instance per connection, looping over keep-alive requests."""

    protocol_version = "HTTP/1.1"
    server_version = "standin/1.0"
    sys_version = ""
    timeout = 300
    server: _Server

    # ------------------------------------------------------------------ plumbing

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.standin._track_connection(self.connection, True)

    def finish(self) -> None:
        self.server.standin._track_connection(self.connection, False)
        with contextlib.suppress(*_DISCONNECT_ERRORS):
            super().finish()

    def handle(self) -> None:
        with contextlib.suppress(*_DISCONNECT_ERRORS, _AbortStream):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request logging."""

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:24]}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self, headers: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:24]}")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _abort(self) -> None:
        """Drop the connection without finishing the response body."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        raise _AbortStream

    # ------------------------------------------------------------------ routing

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/stats":
            self._send_json(200, self.server.standin.stats())
        elif path.endswith("/tcp_warming"):
            self.server.standin._note_warmup()
            self._send_json(200, "OK")
        elif path in ("/", "/health", "/healthz"):
            self._send_json(200, {"ok": True})
        else:
            self._send_json(404, _error_body(self._provider_for(path), 404, f"Unknown path {path}"))

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        body = self._read_body()
        if path == "/control":
            self._handle_control(body)
            return
        if path.endswith("/chat/completions"):
            self._llm_request("openai", path, parts.query, body)
            return
        if _GEMINI_PATH.search(path):
            self._llm_request("gemini", path, parts.query, body)
            return
        self._send_json(404, _error_body(self._provider_for(path), 404, f"Unknown path {path}"))

    @staticmethod
    def _provider_for(path: str) -> Provider:
        return "gemini" if "/models/" in path or path.startswith("/v1beta") else "openai"

    def _handle_control(self, body: bytes) -> None:
        try:
            command = json.loads(body or b"{}")
            if not isinstance(command, dict):
                raise ValueError("control body must be a JSON object")
            result = self.server.standin.control(command)
        except (ValueError, TypeError, KeyError) as exc:
            self._send_json(400, {"ok": False, "error": str(exc)})
            return
        self._send_json(200, result)

    # ------------------------------------------------------------------ LLM requests

    def _api_key(self, provider: Provider, query: str) -> str | None:
        if provider == "gemini":
            key = self.headers.get("x-goog-api-key")
            if not key:
                values = parse_qs(query).get("key")
                key = values[0] if values else None
            return key or None
        auth = self.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None

    def _llm_request(self, provider: Provider, path: str, query: str, raw: bytes) -> None:
        standin = self.server.standin
        standin._enter()
        try:
            key = self._api_key(provider, query)
            payload: dict[str, Any] = {}
            problem: str | None = None
            try:
                loaded = json.loads(raw) if raw else None
                if isinstance(loaded, dict):
                    payload = loaded
                else:
                    problem = "Request body must be a JSON object."
            except (ValueError, UnicodeDecodeError):
                problem = "Invalid JSON in request body."
            if provider == "gemini":
                match = _GEMINI_PATH.search(path)
                model = match.group("model") if match else "unknown"
                stream = bool(match and match.group("method") == "streamGenerateContent")
                if problem is None and not isinstance(payload.get("contents"), list):
                    problem = "* GenerateContentRequest.contents: contents is not specified"
            else:
                model = str(payload.get("model") or "")
                stream = bool(payload.get("stream"))
                if problem is None and not model:
                    problem = "'model' : property 'model' is missing"
                elif problem is None and not isinstance(payload.get("messages"), list):
                    problem = "'messages' : property 'messages' is missing or not an array"
            decision = standin._decide(key, model or "unknown", problem)
            standin._record(key, path, decision.status, stream)
            latency, error_latency, chunk_delay = standin._delays()
            if decision.status != 200:
                if error_latency > 0:
                    time.sleep(error_latency)
                self._send_json(decision.status, self._error_payload(provider, decision), decision.headers)
                return
            if latency > 0:
                time.sleep(latency)
            if provider == "gemini":
                self._answer_gemini(payload, model, stream, decision.headers, chunk_delay)
            else:
                groq = path.startswith("/openai/")
                self._answer_openai(payload, model, stream, groq, decision.headers, chunk_delay)
        finally:
            standin._leave()

    @staticmethod
    def _error_payload(provider: Provider, decision: _Decision) -> dict[str, Any]:
        if provider != "gemini" or decision.status != 429:
            return _error_body(provider, decision.status, decision.message)
        body = _error_body(provider, 429, _GEMINI_RATE_LIMIT_MESSAGE)
        if "Retry-After" in decision.headers:
            # Gemini reports the back-off in a google.rpc.RetryInfo detail rather than a header.
            delay = int(decision.headers["retry-after-ms"]) / 1000
            body["error"]["details"] = [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay:.3f}s"}
            ]
        return body

    # ------------------------------------------------------------------ OpenAI-style answers

    def _answer_openai(
        self,
        payload: dict[str, Any],
        model: str,
        stream: bool,
        groq: bool,
        headers: dict[str, str],
        chunk_delay: float,
    ) -> None:
        messages: list[Any] = payload["messages"]
        text = self.server.standin._reply_for(_last_user_text_openai(messages))
        prompt_tokens = _count_tokens(_prompt_text_openai(messages))
        completion_tokens = _count_tokens(text)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if not stream:
            self._send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_standin",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
                headers,
            )
            return

        def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
            event = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_standin",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                **extra,
            }
            return b"data: " + json.dumps(event).encode() + b"\n\n"

        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))

        def events() -> Iterator[bytes]:
            yield chunk({"role": "assistant", "content": ""}, None)
            for piece in _split_pieces(text):
                yield chunk({"content": piece}, None)
            final_extra: dict[str, Any] = {}
            if groq:
                final_extra["x_groq"] = {"id": f"req_{uuid.uuid4().hex[:24]}", "usage": usage}
            yield chunk({}, "stop", **final_extra)
            if include_usage:
                usage_event = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_standin",
                    "choices": [],
                    "usage": usage,
                }
                yield b"data: " + json.dumps(usage_event).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"

        error_event = (
            b"data: " + json.dumps(_error_body("openai", 503, "stream interrupted by stand-in")).encode()
        )
        self._stream(events(), headers, chunk_delay, first_content=1, error_event=error_event + b"\n\n")

    # ------------------------------------------------------------------ Gemini answers

    def _answer_gemini(
        self, payload: dict[str, Any], model: str, stream: bool, headers: dict[str, str], chunk_delay: float
    ) -> None:
        contents: list[Any] = payload["contents"]
        text = self.server.standin._reply_for(_last_user_text_gemini(contents))
        prompt_tokens = _count_tokens(_prompt_text_gemini(payload))
        completion_tokens = _count_tokens(text)
        usage = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": completion_tokens,
            "totalTokenCount": prompt_tokens + completion_tokens,
        }
        response_id = uuid.uuid4().hex[:22]

        def piece(part_text: str, last: bool) -> dict[str, Any]:
            candidate: dict[str, Any] = {
                "content": {"role": "model", "parts": [{"text": part_text}]},
                "index": 0,
            }
            event: dict[str, Any] = {"candidates": [candidate]}
            if last:
                candidate["finishReason"] = "STOP"
                event["usageMetadata"] = usage
            event["modelVersion"] = model
            event["responseId"] = response_id
            return event

        if not stream:
            self._send_json(200, piece(text, True), headers)
            return
        pieces = _split_pieces(text)

        def events() -> Iterator[bytes]:
            for i, part_text in enumerate(pieces):
                yield b"data: " + json.dumps(piece(part_text, i == len(pieces) - 1)).encode() + b"\r\n\r\n"

        error_event = (
            b"data: " + json.dumps(_error_body("gemini", 503, "stream interrupted by stand-in")).encode()
        )
        self._stream(events(), headers, chunk_delay, first_content=0, error_event=error_event + b"\r\n\r\n")

    # ------------------------------------------------------------------ streaming

    def _stream(
        self,
        events: Iterator[bytes],
        headers: dict[str, str],
        chunk_delay: float,
        *,
        first_content: int,
        error_event: bytes,
    ) -> None:
        """Send SSE ``events`` as a chunked body, honouring ``stream_fail_after``.

        ``first_content`` is the index of the first content-bearing event (earlier ones are preamble).
        """
        breaker = self.server.standin._stream_break()
        self._start_stream(headers)
        for index, event in enumerate(events):
            if breaker is not None and index - first_content >= breaker[0]:
                if breaker[1] == "abort":
                    self._abort()
                self._send_chunk(error_event)
                self._end_stream()
                return
            if chunk_delay > 0 and index > 0:
                time.sleep(chunk_delay)
            self._send_chunk(event)
        self._end_stream()


# ---------------------------------------------------------------------- CLI


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hfs_core.testing.standin",
        description="Run the LLM provider stand-in server on 127.0.0.1 in the foreground.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (0 picks a free one)")
    parser.add_argument(
        "--rpm", type=int, default=None, help="requests per window per key (default: unlimited)"
    )
    parser.add_argument("--window", type=float, default=60.0, help="rate-limit window in seconds")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds slept before each answer")
    parser.add_argument("--error-latency", type=float, default=None, help="seconds slept before errors")
    parser.add_argument(
        "--accept-any-key",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="accept any non-empty key (default: on, unless --key is given)",
    )
    parser.add_argument(
        "--key", action="append", default=[], metavar="K", help="a known (live) key; repeatable"
    )
    parser.add_argument("--reply", default=None, help="fixed reply text (default: echo the user message)")
    parser.add_argument(
        "--stats-on-exit", default=None, metavar="PATH", help="write the stats JSON here at exit"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stand-in in the foreground until SIGTERM/SIGINT; returns the exit status."""
    args = _build_parser().parse_args(argv)
    accept_any = args.accept_any_key if args.accept_any_key is not None else not args.key
    standin = StandIn(
        latency=args.latency,
        rpm=args.rpm,
        window=args.window,
        accept_any_key=accept_any,
        keys=args.key,
        port=args.port,
        reply=args.reply,
        error_latency=args.error_latency,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    standin.start()
    try:
        print(f"STANDIN_URL={standin.url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        if args.stats_on_exit:
            with open(args.stats_on_exit, "w", encoding="utf-8") as fh:
                json.dump(standin.stats(), fh, indent=2)
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
